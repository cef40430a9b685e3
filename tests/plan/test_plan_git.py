"""`deployctl plan --against git:REF` on a real repository: the base rendered by its own code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tooling.cli import cli
from tooling.plan import Plan, StackPlan, mask
from tooling.plan_output import markdown

ROOT = Path(__file__).parents[2]


def git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    return subprocess.run(
        ["git", *env_args, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in ("deployments", "templates", "tooling"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def plan(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["--root", str(repo), "plan", "--against", "git:HEAD", "--no-cache", *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_nothing_changed(repo: Path) -> None:
    code, out = plan(repo, "--detailed-exitcode", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["no-change"] == 4
    assert data["summary"]["deployments"] == 4


def test_a_changed_deleted_added_and_broken_file(repo: Path) -> None:
    llama = repo / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(llama.read_text().replace("g5.xlarge", "g5.2xlarge"), encoding="utf-8")
    (repo / "deployments/dev/mistral-7b.yaml").unlink()
    qwen = (repo / "deployments/staging/qwen2-5-vl-7b.yaml").read_text()
    (repo / "deployments/staging/qwen-copy.yaml").write_text(qwen.replace("qwen2-5-vl-7b", "qwen-copy"))
    (repo / "deployments/dev/broken.yaml").write_text("name: broken\nregion: nowhere-1\n")
    code, out = plan(repo, "--detailed-exitcode", "--format", "json")
    assert code == 1  # an invalid file fails the plan, and is planned as invalid, not skipped
    data = json.loads(out)
    actions = {s["stack_name"]: s["action"] for s in data["stacks"]}
    assert actions == {
        "prod-llama-3-1-8b": "replace",
        "dev-mistral-7b": "delete",
        "staging-qwen-copy": "create",
        "dev-broken": "invalid",
        "prod-multimodal-api": "no-change",
        "staging-qwen2-5-vl-7b": "no-change",
    }
    assert [s["stack_name"] for s in data["stacks"]][:2] == ["prod-llama-3-1-8b", "dev-mistral-7b"]
    llama_plan = next(s for s in data["stacks"] if s["stack_name"] == "prod-llama-3-1-8b")
    changes = {c["logical_id"]: c for c in llama_plan["changes"]}
    assert changes["TaskDefinition"]["replacement"] == "true"
    assert changes["LaunchTemplate"]["replacement"] == "false"
    assert {
        "path": "Properties.LaunchTemplateData.InstanceType",
        "before": "g5.xlarge",
        "after": "g5.2xlarge",
    } in (changes["LaunchTemplate"]["properties"])
    assert llama_plan["cost"]["monthly_after_usd"] > llama_plan["cost"]["monthly_before_usd"]
    broken = next(s for s in data["stacks"] if s["action"] == "invalid")
    assert any("region" in e for e in broken["errors"])
    assert data["summary"]["monthly_delta_usd"] != 0


def test_text_and_markdown(repo: Path) -> None:
    llama = repo / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(llama.read_text().replace("max: 4", "max: 5"), encoding="utf-8")
    code, out = plan(repo, "--detailed-exitcode")
    assert code == 2
    assert "~ prod-llama-3-1-8b update" in out
    assert "Properties.MaxCapacity: 4 → 5" in out
    code, out = plan(repo, "--format", "markdown")
    assert code == 0
    assert out.startswith("<!-- deployctl-plan -->")
    assert (
        "**4 deployments: 0 to create, 1 to update (0 replacing), 0 to delete, 3 unchanged, 0 invalid**"
        in out
    )
    assert "<details" in out and "Monthly estimate" in out


def test_fallback_types_show_the_range_of_the_estimate(repo: Path) -> None:
    """A second instance type changes only where instances come from: the plan says so as an update of
    the group (no replacement of the task or service) and prices the first choice with the range."""
    llama = repo / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(
        llama.read_text().replace("instance_type: g5.xlarge", "instance_types: [g5.xlarge, g6e.xlarge]"),
        encoding="utf-8",
    )
    code, out = plan(repo, "--format", "json")
    assert code == 0
    stack = next(s for s in json.loads(out)["stacks"] if s["stack_name"] == "prod-llama-3-1-8b")
    assert stack["action"] == "update"
    changes = {c["logical_id"]: c for c in stack["changes"]}
    # The dashboard's estimate gains the range (templates/dashboard.py); nothing else changes.
    assert set(changes) == {"InstanceGroup", "Dashboard"}
    assert [p["path"] for p in changes["Dashboard"]["properties"]] == ["Properties.DashboardBody"]
    assert changes["Dashboard"]["replacement"] == "false"
    assert stack["cost"]["monthly_after_usd"] == stack["cost"]["monthly_before_usd"]
    low, high = stack["cost"]["monthly_after_range_usd"]
    assert low == stack["cost"]["monthly_after_usd"] < high  # g5.xlarge is the cheaper of the two
    code, text = plan(repo)
    assert "across the fallback types" in text


def test_the_base_is_rendered_by_its_own_code(repo: Path) -> None:
    # The base revision's stack builder had a shorter deregistration delay; the working tree's has 300 s.
    # (Not the idle timeout: the gateways' keep-alive follows it, which also changes the task definitions.)
    builder = repo / "templates/load_balancer.py"
    builder.write_text(
        builder.read_text().replace(
            "DEREGISTRATION_DELAY_SECONDS = 300", "DEREGISTRATION_DELAY_SECONDS = 200"
        )
    )
    git(repo, "commit", "-q", "-am", "older builder")
    builder.write_text(
        builder.read_text().replace(
            "DEREGISTRATION_DELAY_SECONDS = 200", "DEREGISTRATION_DELAY_SECONDS = 300"
        )
    )
    code, out = plan(repo, "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    # The Spot example (dev/mistral-7b) drains in 90 s whatever the default: three of the four change.
    assert data["summary"]["update"] == 3
    changed = [stack for stack in data["stacks"] if stack["changes"]]
    assert len(changed) == 3
    for stack in changed:
        (change,) = stack["changes"]
        assert change["logical_id"] == "TargetGroup"
        props = {p["path"]: (p["before"], p["after"]) for p in change["properties"]}
        assert ("200", "300") in props.values()


def test_markdown_fits_github_with_a_note_when_cut() -> None:
    stacks = [StackPlan("dev", f"s{i}", f"dev-s{i}", "create") for i in range(300)]
    text = markdown(Plan("git:x", stacks), limit=4000)
    assert len(text) <= 4000
    assert "cut to fit GitHub's comment limit" in text


def test_secrets_are_masked_in_plans() -> None:
    assert mask({"a": ["sk-proj-Xk29dLq8Vn3RbT7wYc5ZpA1fHs4Jm6Ge", "plain"]}) == {"a": ["****", "plain"]}


def test_paths_select_stacks(repo: Path) -> None:
    code, out = plan(repo, str(repo / "deployments/prod"), "--format", "json")
    assert code == 0
    assert {s["environment"] for s in json.loads(out)["stacks"]} == {"prod"}


def test_a_new_checkout_lints_every_template_then_only_what_changed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooling import planning, snapshot
    from tooling.cache import Cache

    linted: list[str] = []
    real = snapshot._lint
    monkeypatch.setattr(snapshot, "PARALLEL_THRESHOLD", 10_000)  # in-process, so the spy sees the calls
    monkeypatch.setattr(
        snapshot, "_lint", lambda text, region, file: linted.append(file) or real(text, region, file)
    )
    store = Cache(repo / ".deployctl-cache")
    assert planning.plan_against_git(repo, "HEAD", store).summary()["no-change"] == 4
    # Issue 14 #12: an empty cache lints every template, even those equal to the base's (nothing
    # says the base was linted by this cfn-lint and these rules)...
    assert sorted(linted) == sorted(
        str(p.relative_to(repo)) for p in (repo / "deployments").glob("*/[!_]*.yaml")
    )
    linted.clear()
    assert planning.plan_against_git(repo, "HEAD", store).summary()["no-change"] == 4
    assert linted == []  # ...and a template linted under the same key is not linted again
    llama = repo / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(llama.read_text().replace("max: 4", "max: 5"), encoding="utf-8")
    plan = planning.plan_against_git(repo, "HEAD", store)
    assert linted == ["deployments/prod/llama-3-1-8b.yaml"]
    assert {s.stack_name: s.action for s in plan.stacks}["prod-llama-3-1-8b"] == "update"


# Issue 14 #5: a base is never guessed.


def test_a_shallow_clone_fetches_the_base_it_needs(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    llama = repo / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(llama.read_text().replace("max: 4", "max: 5"), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "feature")
    git(repo, "checkout", "-q", "main")
    (repo / "deployments/dev/mistral-7b.yaml").write_text(
        (repo / "deployments/dev/mistral-7b.yaml").read_text() + "\n# main moved on\n"
    )
    git(repo, "commit", "-q", "-am", "main moves")
    clone = tmp_path_factory.mktemp("ci") / "checkout"
    # What actions/checkout does by default: one commit of the branch under review.
    subprocess.run(
        [
            "git",
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            "-b",
            "feature",
            f"file://{repo}",
            str(clone),
        ],
        check=True,
    )
    code, out = plan_at(clone, "--against", "git:", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert "merge base with origin/main" in data["against"]
    assert {s["stack_name"]: s["action"] for s in data["stacks"] if s["action"] != "no-change"} == {
        "prod-llama-3-1-8b": "update"
    }

    # Without a reachable origin, the error names the command that fetches the base.
    other = tmp_path_factory.mktemp("ci2") / "checkout"
    subprocess.run(
        [
            "git",
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            "-b",
            "feature",
            f"file://{repo}",
            str(other),
        ],
        check=True,
    )
    git(other, "remote", "set-url", "origin", str(other / "gone"))
    code, out = plan_at(other, "--against", "git:")
    assert code == 1
    assert "git fetch --no-tags --unshallow origin +refs/heads/main:refs/remotes/origin/main" in out


def plan_at(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), "plan", "--no-cache", *args])
    return result.exit_code, result.output


def test_a_missing_base_branch_is_an_error_naming_against(repo: Path) -> None:
    git(repo, "branch", "-m", "main", "master")
    code, out = plan_at(repo, "--against", "git:")
    assert code == 1
    assert "no base branch" in out and "--against git:REF" in out


def test_a_base_that_cannot_render_is_an_error_not_everything_new(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    init = repo / "templates/__init__.py"
    good = init.read_text()
    init.write_text(good + "\nraise ImportError('this revision cannot render')\n")
    git(repo, "commit", "-q", "-am", "broken templates on main")
    git(repo, "checkout", "-q", "-b", "fix")
    init.write_text(good)
    git(repo, "commit", "-q", "-am", "fixed")
    code, out = plan_at(repo, "--against", "auto")
    assert code == 1, out
    assert "with its own code failed" in out and "cannot render" in out
