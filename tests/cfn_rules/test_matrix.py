"""Our rules over every template the spec matrix and the examples render.

On the main this branch started from, most stacks break a contract of issue 10; each (rule, stack) pair
that does is listed in KNOWN with the branch that fixes the templates. Those are strict expected
failures: when a fix lands the test passes, pytest reports XPASS as a failure, and the pair must be
removed from KNOWN. The lead empties KNOWN at merge; then every rule passes on every stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from templates import bootstrap
from templates.stack import render
from tests.templates.conftest import Built, stack_names
from tooling import lint
from tooling.diagnostics import Diagnostic

RULES = [f"E9{n:03d}" for n in range(1, 17)]
STACKS = [*stack_names(), "bootstrap"]  # the deployment stacks, and the account's bootstrap stack

# rule -> (branch fixing it, issue 10 item, the stacks of the current main it fails on)
_FAILING_ON_MAIN: dict[str, tuple[str, str, str]] = {
    "E9001": (
        "shared",
        "item 1",
        """
        dev-fargate-minimal
        prod-fargate-public
        prod-multimodal-api
        staging-fargate-x86-existing-vpc
    """,
    ),
    "E9002": (
        "shared",
        "item 2",
        """
        bootstrap
        prod-fargate-public
        prod-gpu-public
        prod-llama-3-1-8b
        prod-multimodal-api
        prod-sagemaker-multi
    """,
    ),
    "E9003": (
        "targets",
        "item 3",
        """
        dev-gpu-existing-vpc
        prod-gpu-public
        prod-llama-3-1-8b
        staging-gpu-spot-s3
    """,
    ),
    "E9004": (
        "targets",
        "item 4",
        """
        dev-gpu-existing-vpc
        prod-gpu-public
        prod-llama-3-1-8b
        staging-gpu-spot-s3
    """,
    ),
    "E9005": (
        "shared",
        "item 5",
        """
        dev-ec2-spot-schedules
        dev-fargate-minimal
        dev-gpu-existing-vpc
        dev-mistral-7b
        prod-fargate-public
        prod-gpu-public
        prod-llama-3-1-8b
        prod-multimodal-api
        prod-sagemaker-multi
        staging-fargate-x86-existing-vpc
        staging-gpu-spot-s3
        staging-qwen2-5-vl-7b
        staging-sagemaker-small
    """,
    ),
    "E9006": (
        "shared",
        "item 6",
        """
        staging-fargate-x86-existing-vpc
    """,
    ),
    "E9007": (
        "targets",
        "item 7",
        """
        dev-ec2-open-http
        dev-ec2-spot-schedules
        dev-mistral-7b
    """,
    ),
    "E9008": (
        "targets",
        "item 8",
        """
        dev-ec2-open-http
        dev-ec2-spot-schedules
        dev-mistral-7b
    """,
    ),
    "E9009": (
        "shared",
        "item 10",
        """
        dev-ec2-open-http
        dev-ec2-spot-schedules
        dev-fargate-minimal
        dev-gpu-existing-vpc
        dev-mistral-7b
        prod-fargate-public
        prod-gpu-public
        prod-llama-3-1-8b
        prod-multimodal-api
        prod-sagemaker-multi
        staging-fargate-x86-existing-vpc
        staging-gpu-spot-s3
        staging-qwen2-5-vl-7b
        staging-sagemaker-small
    """,
    ),
    "E9010": (
        "shared",
        "item 9",
        """
        prod-sagemaker-multi
        staging-qwen2-5-vl-7b
        staging-sagemaker-small
    """,
    ),
    "E9011": (
        "shared",
        "item 9",
        """
        prod-sagemaker-multi
        staging-qwen2-5-vl-7b
        staging-sagemaker-small
    """,
    ),
    "E9012": (
        "shared",
        "item 13",
        """
        dev-ec2-open-http
        dev-ec2-spot-schedules
        dev-fargate-minimal
        dev-mistral-7b
        prod-fargate-public
        prod-gpu-public
        prod-llama-3-1-8b
        prod-multimodal-api
        prod-sagemaker-multi
        staging-qwen2-5-vl-7b
    """,
    ),
    "E9015": (
        "targets",
        "found by the rule review, ec2 schedules",
        """
        dev-ec2-spot-schedules
        dev-mistral-7b
    """,
    ),
    "E9016": (
        "targets",
        "item 7, user data before the NAT route",
        """
        dev-ec2-open-http
        dev-ec2-spot-schedules
        dev-mistral-7b
    """,
    ),
}
KNOWN: dict[tuple[str, str], str] = {
    (rule, stack): f"{branch} ({item})"
    for rule, (branch, item, stacks) in _FAILING_ON_MAIN.items()
    for stack in stacks.split()
}


def _cases() -> list[Any]:
    return [
        pytest.param(
            rule,
            stack,
            id=f"{rule}-{stack}",
            marks=[pytest.mark.xfail(strict=True, reason=f"fixed on branch {KNOWN[rule, stack]}")]
            if (rule, stack) in KNOWN
            else [],
        )
        for rule in RULES
        for stack in STACKS
    ]


@pytest.fixture(scope="session")
def matrix_findings(built: dict[str, Built]) -> dict[str, list[Diagnostic]]:
    found = {
        name: lint.lint(item.text, item.deployment.spec.region, Path(f"{name}.json"), project_only=True)
        for name, item in built.items()
    }
    found["bootstrap"] = lint.lint(
        render(bootstrap.build()), "us-east-1", Path("bootstrap.json"), project_only=True
    )
    return found


def test_the_table_names_our_rules_and_the_matrix(rules: list[Any]) -> None:
    assert {r.id for r in rules} == set(RULES)
    assert {stack for _, stack in KNOWN} <= set(STACKS)


@pytest.mark.parametrize(("rule", "stack"), _cases())
def test_the_rule_passes_on_the_stack(
    matrix_findings: dict[str, list[Diagnostic]], rule: str, stack: str
) -> None:
    assert [f"{f.field}: {f.message}" for f in matrix_findings[stack] if f.code == rule] == []
