"""Which image each stack runs, as a pure function of the checkout.

An image's tag is the last commit on HEAD that changed its inputs (and, for vLLM, the engine version in
front): `<commit>` for the gateway, `<vllm version>-<commit>` for vLLM. A release therefore knows every
stack's tags without being told: a deployment merged alone gets the images built when their inputs last
changed, a version bump names an image CI builds for that version, and a re-run computes the same tags
and finds them already pushed (ECR tags are immutable, so one tag is one digest).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tooling import gitbase
from tooling.changes import IMAGE_INPUTS

GATEWAY_PARAMETER = "GatewayImageTag"
VLLM_PARAMETER = "VllmImageTag"


class NoImageCommit(Exception):
    """The checkout has no commit that built the image's inputs (not a git checkout, or none committed)."""


def image_commit(root: Path, image: str) -> str:
    """The last commit on HEAD that changed `image`'s inputs."""
    try:
        inputs = IMAGE_INPUTS[image]
        commit = str(gitbase.git(root, "log", "-1", "--format=%H", "HEAD", "--", *inputs)).strip()
    except gitbase.GitError as exc:
        raise NoImageCommit(f"{image}: {exc}") from None
    if not commit:
        raise NoImageCommit(f"{image}: no commit on HEAD changes {', '.join(IMAGE_INPUTS[image])}")
    return commit


def vllm_tag(version: str, commit: str) -> str:
    return f"{version}-{commit}"


def stack_image_tags(root: Path, spec: Any, *, commits: dict[str, str] | None = None) -> dict[str, str]:
    """Parameter name -> tag for every image the deployment's stack runs."""
    commits = commits if commits is not None else {}

    def commit(image: str) -> str:
        if image not in commits:
            commits[image] = image_commit(root, image)
        return commits[image]

    tags = {GATEWAY_PARAMETER: commit("gateway")}
    if getattr(spec.engine, "type", "") == "vllm":
        tags[VLLM_PARAMETER] = vllm_tag(spec.engine.version, commit("vllm"))
    return tags


def build_matrix(root: Path, specs: Iterable[Any]) -> dict[str, Any]:
    """The images a checkout's deployments need: the gateway once, vLLM once per engine version in use."""
    specs = list(specs)
    versions = sorted({s.engine.version for s in specs if getattr(s.engine, "type", "") == "vllm"})
    gateway = image_commit(root, "gateway")
    vllm = image_commit(root, "vllm") if versions else ""
    return {
        "gateway": {"tag": gateway},
        "vllm": [{"version": v, "tag": vllm_tag(v, vllm)} for v in versions],
    }
