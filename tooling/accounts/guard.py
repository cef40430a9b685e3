"""What plan and deploy check before touching a stack: the right account, an allowed region, its images.

Credentials for the wrong account are the easy mistake with one account per environment (a staging
role exported in the shell that deploys prod); environments.yaml says which account each environment
lives in, so the mismatch is refused before any change set exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tooling import aws
from tooling.accounts import images
from tooling.accounts.environments import Environments


def protected(environment: str, config: Environments | None) -> bool:
    """Stacks that get termination protection and that prune deletes only with --yes."""
    if config is None or environment not in config.environments:
        return environment == "prod"
    return config.environments[environment].required_reviewers


def placement(stack_name: str, environment: str, region: str, config: Environments | None) -> list[str]:
    """The account and region problems of one stack (empty when fine, or when nothing is declared)."""
    if config is None:
        return []
    env = config.environments.get(environment)
    if env is None:
        return [f"{stack_name}: environment {environment} is not in deployments/environments.yaml"]
    if region not in env.regions:
        return [
            f"{stack_name}: region {region} is not one of {environment}'s regions in environments.yaml "
            f"({', '.join(env.regions)})"
        ]
    account = aws.account_id(region)
    if account != env.account_id:
        return [
            f"{stack_name}: these credentials reach account {account}, but environments.yaml puts "
            f"{environment} in {env.account_id}; assume a role of that account. Nothing was changed."
        ]
    return []


def before_change(
    stack_name: str,
    environment: str,
    region: str,
    template_text: str,
    tags: Mapping[str, str],
    config: Environments | None,
    *,
    image_wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> list[str]:
    """Every reason not to create a change set for this stack (empty: go ahead)."""
    if problems := placement(stack_name, environment, region, config):
        return problems
    return images.check(
        stack_name, region, images.wanted(template_text, tags), wait=image_wait, on_wait=on_wait
    )
