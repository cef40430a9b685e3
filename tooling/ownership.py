"""Which stacks are ours: the tags every stack carries, and finding our stacks in every region.

Identity is the repository (owner/name), the environment and the deployment file. The repository
is `github_repository` in deployments/environments.yaml (the roles' trust reads the same value); without
that file it comes from the checkout itself, so the same checkout always writes the same tag: the URL of
its `origin` remote (actions/checkout sets it to https://github.com/<owner>/<name>; a laptop clone has the
same remote), else $GITHUB_REPOSITORY (a checkout without git, in Actions). It is computed once per
run and passed to the engine as an input; templates never read it.

CloudFormation's DescribeStacks takes no tag filter (its only inputs are StackName and NextToken:
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html), so the
filter is applied to the Tags each described stack returns. Regions searched: those the deployments
use, those given by the caller (the accounts work feeds the account's regions here), and every region
recorded in the `deployctl:regions` tag of a stack found, until no new region appears.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANAGEMENT_TAG = "deployctl:managed-by"
REPOSITORY_TAG = "deployctl:repository"
ENVIRONMENT_TAG = "deployctl:environment"
DEPLOYMENT_TAG = "deployctl:deployment"
STACK_TAG = "deployctl:stack"
FILE_TAG = "deployctl:file"
COMMIT_TAG = "deployctl:commit"
REGIONS_TAG = "deployctl:regions"
_REMOTE = re.compile(r"(?:[:/])([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class NoIdentity(Exception):
    """The checkout does not say which repository it is: nothing may be tagged or pruned as ours."""


def parse_remote(url: str) -> str | None:
    """owner/name from an https, ssh or scp-style git remote URL."""
    match = _REMOTE.search(url.strip())
    return f"{match.group(1)}/{match.group(2)}" if match else None


def repository_of(root: Path) -> str:
    """owner/name of the checkout at `root` (see the module docstring for the order)."""
    from tooling import gitbase  # noqa: PLC0415
    from tooling.accounts import environments  # noqa: PLC0415

    # Declared once, in deployments/environments.yaml, where the roles' trust reads it too.
    try:
        loaded = environments.load(root)
    except environments.EnvironmentsError:
        loaded = None  # its errors are reported, located, by the commands that read it
    if loaded is not None and loaded.config.github_repository:
        return str(loaded.config.github_repository)
    try:
        url = str(gitbase.git(root, "remote", "get-url", "origin"))
    except gitbase.GitError:
        url = ""
    if url and (name := parse_remote(url)):
        return name
    if name := os.environ.get("GITHUB_REPOSITORY", "").strip():
        return name
    raise NoIdentity(
        "which repository is this? no `origin` remote and no $GITHUB_REPOSITORY; add the remote "
        "(git remote add origin https://github.com/OWNER/NAME) so stacks can be tagged as this repository's"
    )


def tags_of(stack: dict[str, Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in (stack or {}).get("Tags", [])}


@dataclass
class Found:
    """Our stacks in the regions searched, and the regions that could not be listed (with why)."""

    stacks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (region, stack)
    regions: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)


def is_ours(stack: dict[str, Any], repository: str, environments: set[str] | None) -> bool:
    tags = tags_of(stack)
    return (
        tags.get(MANAGEMENT_TAG) == "deployctl"
        and tags.get(REPOSITORY_TAG) == repository
        and (environments is None or tags.get(ENVIRONMENT_TAG) in environments)
        and stack.get("StackStatus") != "DELETE_COMPLETE"
    )


def find(repository: str, regions: Iterable[str], environments: set[str] | None = None) -> Found:
    """Every stack of `repository` (and of `environments`, None: all) in `regions` and in every
    region our stacks record."""
    from tooling.changesets import all_stacks  # noqa: PLC0415

    found = Found()
    queue = sorted({r for r in regions if r})
    while queue:
        region = queue.pop(0)
        if region in found.regions:
            continue
        found.regions.add(region)
        try:
            stacks = all_stacks(region)
        except Exception as exc:  # a region we cannot list is reported, never assumed empty
            found.errors[region] = f"{type(exc).__name__}: {exc}"
            continue
        for stack in stacks:
            tags = tags_of(stack)
            if tags.get(REPOSITORY_TAG) != repository or tags.get(MANAGEMENT_TAG) != "deployctl":
                continue
            for recorded in tags.get(REGIONS_TAG, "").split():
                if recorded not in found.regions and recorded not in queue:
                    queue.append(recorded)
            if is_ours(stack, repository, environments):
                found.stacks.append((region, stack))
    return found


def default_regions() -> set[str]:
    """The regions every search starts from besides the deployments': the SDK's default region."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return {region} if region else set()


def ownership_tags(state: Any, repository: str) -> dict[str, str]:
    """The tags that say whose a stack is (all but the hash, commit and regions tags)."""
    return {
        MANAGEMENT_TAG: "deployctl",
        REPOSITORY_TAG: repository,
        ENVIRONMENT_TAG: state.environment,
        DEPLOYMENT_TAG: state.name,
        STACK_TAG: state.stack_name,
        FILE_TAG: state.file,
    }
