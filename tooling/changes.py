"""What a commit range changed, shaped for a workflow's job matrix: deployments, removals, images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tooling import gitbase
from tooling.cache import Cache
from tooling.plan import Plan

# The files each image is built from: a change to any of them rebuilds that image.
IMAGE_INPUTS = {
    "gateway": ("inference_server/",),
    "vllm": ("inference_server/", "Dockerfile.vllm"),
}


def changed(root: Path, since: str, store: Cache) -> dict[str, Any]:
    from tooling.planning import head_snapshot, plan_against_git  # noqa: PLC0415

    commit = gitbase.resolve(root, since)
    # What changed needs renders, not lint findings.
    head = head_snapshot(root, store, lint=False)
    plan: Plan = plan_against_git(root, since, store, head=head)
    files = str(gitbase.git(root, "diff", "--name-only", commit, "--")).splitlines()
    files += str(gitbase.git(root, "ls-files", "--others", "--exclude-standard")).splitlines()

    def entry(stack: Any) -> dict[str, str]:
        return {
            "environment": stack.environment,
            "name": stack.name,
            "stack_name": stack.stack_name,
            "file": f"deployments/{stack.environment}/{stack.name}.yaml",
        }

    deployments = [entry(s) for s in plan.stacks if s.action in ("create", "update", "replace", "invalid")]
    removed = [entry(s) for s in plan.stacks if s.action == "delete"]
    images: dict[str, Any] = {
        name: any(f.startswith(p) for f in files for p in prefixes) for name, prefixes in IMAGE_INPUTS.items()
    }
    images["vllm_versions"] = new_vllm_images(root, commit, head, gitbase.snapshot_at(root, commit, store))
    images["vllm"] = images["vllm"] or bool(images["vllm_versions"])
    return {
        "since": commit,
        "deployments": deployments,
        "removed": removed,
        "environments": sorted({d["environment"] for d in deployments + removed}),
        "images": images,
    }


def new_vllm_images(root: Path, since: str, head: Any, base: Any) -> list[str]:
    """The engine versions in use whose vLLM image `since` did not have: a version a deployment moved
    to, or one whose inputs (the gateway, Dockerfile.vllm, its line of vllm_images.yaml) changed."""
    from tooling.release.images import NoImageCommit, image_commit  # noqa: PLC0415

    def versions(snapshot: Any) -> set[str]:
        return {
            s.vllm_version for s in snapshot.stacks.values() if s.text and not s.errors and s.vllm_version
        }

    before = versions(base)
    out = []
    for version in sorted(versions(head)):
        try:
            built = image_commit(root, "vllm", version)
        except NoImageCommit:
            continue
        if version not in before or not gitbase.is_ancestor(root, built, since):
            out.append(version)
    return out
