"""Discovery, layered defaults and the checks that span files."""

from __future__ import annotations

from pathlib import Path

from tests.spec.conftest import VALID
from tooling import repository
from tooling.diagnostics import Severity


def codes(result: repository.Deployments) -> list[tuple[str, str]]:
    return [(d.code, d.location.file.name) for d in result.diagnostics]


def test_examples_in_the_repository_are_valid() -> None:
    root = Path(__file__).parents[2]
    result = repository.load(root)
    # Only SageMaker's documented 60 s limit, which applies to every SageMaker endpoint.
    # The prod example follows the recommended GPU AMI until someone pins a real one (SPEC225).
    assert [(d.location.file.name, d.code) for d in result.diagnostics] == [
        ("llama-3-1-8b.yaml", "SPEC225"),
        ("qwen2-5-vl-7b.yaml", "SPEC222"),
    ]
    names = {(f.environment, f.name) for f in result.files}
    assert names == {
        ("prod", "multimodal-api"),
        ("prod", "llama-3-1-8b"),
        ("staging", "qwen2-5-vl-7b"),
        ("dev", "mistral-7b"),
    }
    assert all(f.valid for f in result.files)


def test_names_are_unique_per_environment(tree) -> None:
    root = tree(
        {
            "deployments/prod/a.yaml": VALID.format(name="same-name"),
            "deployments/prod/b.yaml": VALID.format(name="same-name"),
            "deployments/dev/same-name.yaml": VALID.format(name="same-name"),
        }
    )
    result = repository.load(root)
    dupes = [d for d in result.diagnostics if d.code == "SPEC220"]
    assert sorted((d.location.file.name, d.location.line, d.field) for d in dupes) == [
        ("a.yaml", 1, "name"),
        ("b.yaml", 1, "name"),
    ]
    assert "also used by b.yaml in prod" in next(d.message for d in dupes if d.location.file.name == "a.yaml")
    assert {(f.environment, f.path.name, f.valid) for f in result.files} == {
        ("prod", "a.yaml", False),
        ("prod", "b.yaml", False),
        ("dev", "same-name.yaml", True),
    }


def test_duplicate_is_reported_when_only_one_file_is_asked_for(tree) -> None:
    root = tree(
        {
            "deployments/prod/a.yaml": VALID.format(name="same-name"),
            "deployments/prod/b.yaml": VALID.format(name="same-name"),
        }
    )
    result = repository.load(root, [root / "deployments/prod/a.yaml"])
    assert [(d.code, d.location.file.name) for d in result.errors] == [("SPEC220", "a.yaml")]


def test_selecting_a_file_reports_only_that_file(tree) -> None:
    root = tree(
        {
            "deployments/prod/good.yaml": VALID.format(name="good"),
            "deployments/prod/broken.yaml": "name: broken\nregion: mars-1\n",
        }
    )
    result = repository.load(root, [root / "deployments/prod/good.yaml"])
    assert result.diagnostics == []
    assert [f.name for f in result.files] == ["good"]


def test_binary_file_is_reported_not_raised(tree) -> None:
    root = tree({"deployments/dev/blob.yaml": b"\xff\xfe\x00binary"})
    result = repository.load(root)
    assert codes(result) == [("YAML002", "blob.yaml")]
    assert "not UTF-8" in result.diagnostics[0].message


def test_missing_deployments_folder(tmp_path: Path) -> None:
    result = repository.load(tmp_path)
    assert [d.code for d in result.diagnostics] == ["REPO001"]


def test_missing_path(tree) -> None:
    root = tree({"deployments/dev/x.yaml": VALID.format(name="x-1")})
    result = repository.load(root, [root / "deployments/dev/nope.yaml"])
    assert [d.code for d in result.diagnostics] == ["REPO002"]


def test_misplaced_files(tree) -> None:
    root = tree(
        {
            "deployments/loose.yaml": VALID.format(name="loose"),
            "deployments/prod/nested/deep.yaml": VALID.format(name="deep"),
            "deployments/Prod/upper.yaml": VALID.format(name="upper"),
            "elsewhere/outside.yaml": VALID.format(name="outside"),
        }
    )
    result = repository.load(root, [root / "deployments", root / "elsewhere/outside.yaml"])
    assert sorted(codes(result)) == [
        ("REPO003", "deep.yaml"),
        ("REPO003", "loose.yaml"),
        ("REPO003", "outside.yaml"),
        ("REPO004", "upper.yaml"),
    ]
    assert result.files == []


def test_defaults_are_layered_and_the_file_wins(tree) -> None:
    root = tree(
        {
            "deployments/_defaults.yaml": "owner: base@example.com\nregion: eu-west-1\n"
            "tags: {team: base, site: hq}\nnetwork: {allowed_cidrs: [10.0.0.0/8, 192.168.0.0/16]}\n",
            "deployments/prod/_defaults.yaml": "region: us-east-1\ntags: {team: prod}\n",
            "deployments/prod/svc.yaml": "name: svc\nmodel: {id: a/b}\nengine: {type: vllm}\n"
            "compute: {service: ecs-gpu, instance_type: g5.xlarge, ami_id: ami-0123456789abcdef0}\n"
            "tags: {app: svc}\n"
            "network: {allowed_cidrs: [172.16.0.0/12]}\n",
        }
    )
    result = repository.load(root)
    assert result.diagnostics == []
    spec = result.files[0].spec
    assert spec is not None
    assert spec.owner == "base@example.com"
    assert spec.region == "us-east-1"
    assert spec.tags == {"team": "prod", "site": "hq", "app": "svc"}
    assert spec.network.allowed_cidrs == ["172.16.0.0/12"]  # lists are replaced, not appended


def test_error_in_a_default_points_at_the_defaults_file_once(tree) -> None:
    root = tree(
        {
            "deployments/staging/_defaults.yaml": "owner: team@example.com\nregion: us-east-1\n"
            "observability:\n  log_retention_days: 31\n",
            "deployments/staging/one.yaml": VALID.format(name="one").replace("owner: team@example.com\n", ""),
            "deployments/staging/two.yaml": VALID.format(name="two").replace("owner: team@example.com\n", ""),
        }
    )
    result = repository.load(root)
    errors = result.errors
    assert len(errors) == 1, errors
    (error,) = errors
    assert (error.location.file.name, error.location.line, error.location.col) == ("_defaults.yaml", 4, 23)
    assert error.field == "observability.log_retention_days"
    assert error.via is not None and error.via.name in ("one.yaml", "two.yaml")
    assert not any(f.valid for f in result.files)


def test_a_file_overriding_a_bad_default_is_valid(tree) -> None:
    root = tree(
        {
            "deployments/staging/_defaults.yaml": "owner: team@example.com\nregion: us-east-9\n",
            "deployments/staging/one.yaml": "name: one\nregion: us-east-1\nmodel: {id: a/b}\n"
            "engine: {type: vllm}\ncompute: {service: ecs-gpu, instance_type: g5.xlarge}\n",
        }
    )
    result = repository.load(root)
    assert result.diagnostics == []


def test_broken_defaults_file_is_reported(tree) -> None:
    root = tree(
        {
            "deployments/dev/_defaults.yaml": "owner: [unclosed\n",
            "deployments/dev/x.yaml": VALID.format(name="x-1"),
        }
    )
    result = repository.load(root)
    assert ("YAML003", "_defaults.yaml") in codes(result)


def test_warnings_do_not_invalidate(tree) -> None:
    root = tree({"deployments/dev/x.yaml": VALID.format(name="x-other")})
    result = repository.load(root)
    assert [d.severity for d in result.diagnostics] == [Severity.WARNING]
    assert result.files[0].valid
