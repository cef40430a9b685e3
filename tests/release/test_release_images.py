"""Image tags come from the checkout alone: the last commit that changed each image's inputs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tooling import vllm_images
from tooling.release import images

ROOT = Path(__file__).parents[2]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    return tmp_path


def _commit(root: Path, path: str, text: str) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", path)
    return _git(root, "rev-parse", "HEAD")


def _vllm(version: str) -> SimpleNamespace:
    return SimpleNamespace(engine=SimpleNamespace(type="vllm", version=version))


def test_tags_follow_the_last_commit_that_changed_each_image(checkout: Path) -> None:
    gateway = _commit(checkout, "inference_server/app.py", "v1")
    vllm = _commit(checkout, "Dockerfile.vllm", "FROM x")
    _commit(checkout, "deployments/dev/a.yaml", "a: 1")  # a deployment alone rebuilds nothing
    assert images.stack_image_tags(checkout, _vllm("0.31.0")) == {
        "GatewayImageTag": gateway,
        "VllmImageTag": f"0.31.0-{vllm}",
    }
    proxy = SimpleNamespace(engine=SimpleNamespace(type="external"))
    assert images.stack_image_tags(checkout, proxy) == {"GatewayImageTag": gateway}
    both = _commit(checkout, "inference_server/app.py", "v2")  # the gateway is in both images
    assert images.stack_image_tags(checkout, _vllm("0.34.0")) == {
        "GatewayImageTag": both,
        "VllmImageTag": f"0.34.0-{both}",
    }


def test_the_build_matrix_has_one_vllm_image_per_version(checkout: Path) -> None:
    commit = _commit(checkout, "Dockerfile.vllm", "FROM x")
    _commit(checkout, "inference_server/app.py", "v1")
    matrix = images.build_matrix(checkout, [_vllm("0.31.0"), _vllm("0.11.0"), _vllm("0.31.0")])
    head = _git(checkout, "rev-parse", "HEAD")
    assert matrix["gateway"]["tag"] == head
    assert [v["version"] for v in matrix["vllm"]] == ["0.11.0", "0.31.0"]
    assert matrix["vllm"][0]["tag"] == f"0.11.0-{head}"
    assert commit != head


def test_each_build_says_how_to_build_it(checkout: Path) -> None:
    _commit(checkout, "inference_server/app.py", "v1")
    gateway, pinned, resolved = images.builds(checkout, [_vllm("0.34.0"), _vllm("0.31.0")])
    # Fargate runs the gateway on arm64 or x86_64 (compute.architecture): one multi-arch image.
    assert gateway.platforms == ("linux/arm64", "linux/amd64")
    assert (gateway.repository, gateway.dockerfile, gateway.base) == (
        "deployctl/gateway", "inference_server/Dockerfile", None
    )  # fmt: skip
    assert pinned.version == "0.31.0" and pinned.platforms == ("linux/amd64",)
    digest = vllm_images.base("0.31.0").digest
    assert pinned.base == {"name": "vllm/vllm-openai:v0.31.0", "digest": digest, "resolve": False}
    assert pinned.build_args == {
        "VLLM_VERSION": "0.31.0",
        "VLLM_BASE_IMAGE": f"vllm/vllm-openai:v0.31.0@{digest}",
    }
    # No public record of 0.34.0's digest: CI resolves the tag and builds FROM tag@digest.
    assert resolved.base == {"name": "vllm/vllm-openai:v0.34.0", "digest": None, "resolve": True}
    assert resolved.build_args["VLLM_BASE_IMAGE"] == "vllm/vllm-openai:v0.34.0"
    matrix = images.github_matrix([gateway, resolved])["include"]
    assert matrix[0]["platforms"] == "linux/arm64,linux/amd64" and matrix[0]["build_args"] == ""
    assert matrix[1]["build_args"] == "VLLM_BASE_IMAGE=vllm/vllm-openai:v0.34.0\nVLLM_VERSION=0.34.0"
    assert matrix[1]["resolve_base"] == "true" and matrix[1]["base"] == "vllm/vllm-openai:v0.34.0"
    assert len({m["cache_scope"] for m in matrix}) == 2
    assert all(isinstance(v, str) for m in matrix for v in m.values())


def test_pinning_one_versions_base_rebuilds_that_version_alone(checkout: Path) -> None:
    """A version's line of vllm_images.yaml is one of its image's inputs; the other lines are not."""
    data = (ROOT / images.DATA_FILE).read_text(encoding="utf-8")
    first = _commit(checkout, images.DATA_FILE, data)
    _commit(checkout, "inference_server/app.py", "v1")
    before = images.stack_image_tags(checkout, _vllm("0.34.0"))["VllmImageTag"]
    other = images.stack_image_tags(checkout, _vllm("0.31.0"))["VllmImageTag"]
    pinned = data.replace(
        '"0.34.0": {digest: resolve-at-build}', f'"0.34.0": {{digest: "sha256:{"a" * 64}"}}'
    )
    assert pinned != data
    moved = _commit(checkout, images.DATA_FILE, pinned)
    assert images.stack_image_tags(checkout, _vllm("0.34.0"))["VllmImageTag"] == f"0.34.0-{moved}"
    assert images.stack_image_tags(checkout, _vllm("0.31.0"))["VllmImageTag"] == other
    assert before != f"0.34.0-{moved}" and first != moved


def test_a_stacks_tags_are_those_its_template_declares(checkout: Path) -> None:
    gateway = _commit(checkout, "inference_server/app.py", "v1")
    text = json.dumps({"Parameters": {"VllmImageTag": {"Type": "String"}}})
    gpu = SimpleNamespace(stack_name="dev-a", text=text, errors=[], vllm_version="0.31.0")
    proxy = SimpleNamespace(
        stack_name="dev-b",
        text=json.dumps({"Parameters": {"GatewayImageTag": {}}}),
        errors=[],
        vllm_version=None,
    )
    broken = SimpleNamespace(stack_name="dev-c", text=None, errors=["x"], vllm_version=None)
    assert images.checkout_tags(checkout, [gpu, proxy, broken]) == {
        "dev-a": {"VllmImageTag": f"0.31.0-{gateway}"},
        "dev-b": {"GatewayImageTag": gateway},
    }


def test_no_commit_for_the_inputs_is_an_error_not_a_guess(checkout: Path, tmp_path_factory) -> None:
    _commit(checkout, "README.md", "x")
    with pytest.raises(images.NoImageCommit, match="no commit on HEAD changes"):
        images.stack_image_tags(checkout, _vllm("0.31.0"))
    plain = tmp_path_factory.mktemp("plain")  # not a git checkout at all: no tags, no traceback
    text = json.dumps({"Parameters": {"GatewayImageTag": {}}})
    state = SimpleNamespace(stack_name="dev-a", text=text, errors=[], vllm_version=None)
    assert images.checkout_tags(plain, [state]) == {}


def test_the_shipped_versions() -> None:
    catalogue = vllm_images.catalogue()
    numbers = [tuple(int(p) for p in re.findall(r"\d+", v)) for v in catalogue.versions]
    assert catalogue.default == catalogue.versions[0]
    assert numbers == sorted(numbers, reverse=True)  # newest first, the default the newest
    assert numbers[0] >= (0, 30, 0)
    for base in catalogue.bases.values():
        assert base.name == f"vllm/vllm-openai:v{base.version}"
        assert base.reference == (f"{base.name}@{base.digest}" if base.digest else base.name)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            'repository: r\ndefault: "1.0.0"\nversions:\n  "1.0.0":\n    digest: resolve-at-build\n',
            "one line",
        ),
        ('repository: r\ndefault: "1.0.0"\nversions:\n  "1.0.0": {digest: sha256:abc}\n', "sha256:<64 hex>"),
        ('repository: r\ndefault: "2.0.0"\nversions:\n  "1.0.0": {digest: resolve-at-build}\n', "default"),
        ('repository: r\ndefault: "1.0"\nversions:\n  1.0: {digest: resolve-at-build}\n', "quoted release"),
    ],
)
def test_a_broken_data_file_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(vllm_images.BadData, match=re.escape(error)):
        vllm_images.parse(text)


def test_dockerfile_vllm_takes_exactly_the_build_arguments_the_matrix_passes(checkout: Path) -> None:
    text = (ROOT / "Dockerfile.vllm").read_text(encoding="utf-8")
    arguments = set(re.findall(r"^ARG ([A-Z_]+)\s*$", text, re.MULTILINE))
    _commit(checkout, "inference_server/app.py", "v1")
    (_, vllm) = images.builds(checkout, [_vllm("0.31.0")])
    assert arguments == set(vllm.build_args)
    # No default a build could fall back on: the version and its pinned base are always named.
    assert not re.search(r"^ARG [A-Z_]+=", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{VLLM_BASE_IMAGE\}$", text, re.MULTILINE)
    # The build checks what the tag promises: a pinned base that runs the named vLLM.
    assert "*@sha256:*" in text and 'version("vllm")' in text
