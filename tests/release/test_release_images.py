"""Image tags come from the checkout alone: the last commit that changed each image's inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tooling.release import images


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
    assert images.stack_image_tags(checkout, _vllm("0.11.0")) == {
        "GatewayImageTag": gateway,
        "VllmImageTag": f"0.11.0-{vllm}",
    }
    proxy = SimpleNamespace(engine=SimpleNamespace(type="external"))
    assert images.stack_image_tags(checkout, proxy) == {"GatewayImageTag": gateway}
    both = _commit(checkout, "inference_server/app.py", "v2")  # the gateway is in both images
    assert images.stack_image_tags(checkout, _vllm("0.12.0")) == {
        "GatewayImageTag": both,
        "VllmImageTag": f"0.12.0-{both}",
    }


def test_the_build_matrix_has_one_vllm_image_per_version(checkout: Path) -> None:
    commit = _commit(checkout, "Dockerfile.vllm", "FROM x")
    _commit(checkout, "inference_server/app.py", "v1")
    matrix = images.build_matrix(checkout, [_vllm("0.12.0"), _vllm("0.11.0"), _vllm("0.12.0")])
    head = _git(checkout, "rev-parse", "HEAD")
    assert matrix["gateway"] == {"tag": head}
    assert [v["version"] for v in matrix["vllm"]] == ["0.11.0", "0.12.0"]
    assert matrix["vllm"][0]["tag"] == f"0.11.0-{head}"
    assert commit != head


def test_no_commit_for_the_inputs_is_an_error_not_a_guess(checkout: Path) -> None:
    _commit(checkout, "README.md", "x")
    with pytest.raises(images.NoImageCommit, match="no commit on HEAD changes"):
        images.stack_image_tags(checkout, _vllm("0.11.0"))
