"""Is the image a stack is about to run in its own region's repository? Asked before any stack changes.

Each stack pulls from the ECR repository of its own account and region, where ECR replication puts what
CI pushed. A tag that is not there (replication still copying, not configured, or a typo) would only
show up as tasks that never start; DescribeImages answers it in one call per image.
https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping

from botocore.exceptions import ClientError

from templates.images import GATEWAY_REPOSITORY, VLLM_REPOSITORY
from tooling import aws

REPOSITORY_OF = {"GatewayImageTag": GATEWAY_REPOSITORY, "VllmImageTag": VLLM_REPOSITORY}
# Placeholders the plan passes for stacks whose images are not built yet: never looked up.
PLACEHOLDERS = {"not-yet-built"}


def wanted(template_text: str, tags: Mapping[str, str]) -> dict[str, str]:
    """Repository -> tag, for the image parameters this template declares and `tags` sets."""
    declared = json.loads(template_text or "{}").get("Parameters", {})
    return {
        REPOSITORY_OF[key]: tag
        for key, tag in sorted(tags.items())
        if key in declared and key in REPOSITORY_OF and tag not in PLACEHOLDERS
    }


def missing(region: str, images: Mapping[str, str]) -> list[str]:
    """The `repository:tag` of `images` absent from the region's registry of the caller's account."""
    return [f"{repository}:{tag}" for repository, tag in absent(region, sorted(images.items()))]


def absent(region: str, images: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (repository, tag) pairs not in the region's registry of the caller's account: one
    DescribeImages each; ImageNotFoundException (or no such repository) means not there."""
    ecr = aws.client("ecr", region)
    out = []
    for repository, tag in images:
        try:
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise
            out.append((repository, tag))
    return out


def check(
    stack_name: str,
    region: str,
    images: Mapping[str, str],
    *,
    wait: float = 0.0,
    poll: float = 15.0,
    on_wait: Callable[[str], None] | None = None,
) -> list[str]:
    """Problems to report (empty: every image is there), waiting up to `wait` s for replication."""
    if not images:
        return []
    deadline = time.monotonic() + wait
    while absent := missing(region, images):
        if time.monotonic() >= deadline:
            return [
                f"{stack_name}: image {', '.join(absent)} is not in {region}'s ECR repository of this "
                "account; push it to the CI registry (ECR replication copies it here once `deployctl "
                "bootstrap` has configured replication) or pass an --image-tag that exists. Nothing was "
                "changed."
            ]
        if on_wait:
            on_wait(f"waiting for {', '.join(absent)} to replicate to {region}")
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
    return []
