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

# rule -> (branch fixing it, issue item, the stacks it still fails on)
_FAILING_ON_MAIN: dict[str, tuple[str, str, str]] = {
    "E9002": ("accounts", "issue 11, retries of a failed bootstrap", "bootstrap"),
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
