"""engine.version picks the stack's image: the plan shows it, `deployctl images` builds it, `changed` too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tooling.cli import cli

ROOT = Path(__file__).parents[2]
MISTRAL = "deployments/dev/mistral-7b.yaml"


def git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    return subprocess.run(
        ["git", *env_args, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in ("deployments", "templates", "tooling", "inference_server"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Dockerfile.vllm", tmp_path / "Dockerfile.vllm")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def run(repo: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return result.output


def bump(repo: Path, version: str) -> None:
    path = repo / MISTRAL
    text = path.read_text(encoding="utf-8")
    assert 'version: "0.34.0"' in text
    path.write_text(text.replace('version: "0.34.0"', f'version: "{version}"'), encoding="utf-8")


def images(repo: Path) -> dict[str, str]:
    """repository -> tags `deployctl images` lists."""
    listed = json.loads(run(repo, "images", "--format", "json"))["images"]
    return {f"{i['repository']}:{i['version'] or ''}": i["tag"] for i in listed}


def test_images_lists_the_gateway_once_and_each_version_in_use_once(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    # Three vLLM deployments on 0.34.0 and one gateway deployment: two images.
    assert images(repo) == {"deployctl/gateway:": head, "deployctl/vllm:0.34.0": f"0.34.0-{head}"}
    matrix = json.loads(run(repo, "images", "--format", "github-matrix"))["include"]
    assert [(m["image"], m["platforms"]) for m in matrix] == [
        ("gateway", "linux/arm64,linux/amd64"),
        ("vllm", "linux/amd64"),
    ]
    text = run(repo, "images")
    assert f"deployctl/vllm:0.34.0-{head} [linux/amd64] FROM vllm/vllm-openai:v0.34.0 (resolve)" in text


def test_bumping_one_files_version_changes_its_plan_and_the_images(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    bump(repo, "0.31.0")
    listed = images(repo)
    assert listed["deployctl/vllm:0.31.0"] == f"0.31.0-{head}"  # a new image, for that version
    assert listed["deployctl/vllm:0.34.0"] == f"0.34.0-{head}"  # the other deployments keep theirs

    data = json.loads(run(repo, "plan", "--against", "git:HEAD", "--no-cache", "--format", "json"))
    actions = {s["stack_name"]: s["action"] for s in data["stacks"]}
    assert actions.pop("dev-mistral-7b") == "update"
    assert set(actions.values()) == {"no-change"}
    (mistral,) = [s for s in data["stacks"] if s["stack_name"] == "dev-mistral-7b"]
    assert mistral["image_tags"] == {"VllmImageTag": f"0.31.0-{head}"}
    assert mistral["hash"]["image_tags"] is not None  # a deploy bound to this plan must set this tag
    # The image parameter, and whatever else reads the version (the gateway's ENGINE_VERSION).
    (change,) = [c for c in mistral["changes"] if c["logical_id"] == "Parameters.VllmImageTag"]
    assert change["properties"] == [
        {"path": "AllowedPattern", "before": r"^0\.34\.0-[0-9a-f]{40}$", "after": r"^0\.31\.0-[0-9a-f]{40}$"},
        {"path": "Value", "before": None, "after": f"0.31.0-{head}"},
    ]
    # Stacks that keep their image show none: the deploy keeps what they run.
    assert all(s["image_tags"] is None for s in data["stacks"] if s["stack_name"] != "dev-mistral-7b")

    git(repo, "commit", "-qam", "mistral on 0.31.0")
    changed = json.loads(run(repo, "changed", "--since", "HEAD~1", "--format", "json"))
    assert changed["images"] == {"gateway": False, "vllm": True, "vllm_versions": ["0.31.0"]}
    assert [d["stack_name"] for d in changed["deployments"]] == ["dev-mistral-7b"]
    # Nothing moved since: nothing to build.
    assert json.loads(run(repo, "changed", "--since", "HEAD", "--format", "json"))["images"] == {
        "gateway": False,
        "vllm": False,
        "vllm_versions": [],
    }


def test_a_new_deployment_plans_with_the_checkouts_tags(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    text = (repo / MISTRAL).read_text(encoding="utf-8").replace("name: mistral-7b", "name: mistral-new")
    (repo / "deployments/dev/mistral-new.yaml").write_text(text, encoding="utf-8")
    data = json.loads(run(repo, "plan", "--against", "git:HEAD", "--no-cache", "--format", "json"))
    (new,) = [s for s in data["stacks"] if s["action"] == "create"]
    assert new["image_tags"] == {"VllmImageTag": f"0.34.0-{head}"}
    markdown = run(repo, "plan", "--against", "git:HEAD", "--format", "markdown")
    assert f"VllmImageTag=0.34.0-{head}" in markdown
