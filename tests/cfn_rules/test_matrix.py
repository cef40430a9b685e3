"""Our rules over every template the spec matrix and the examples render, and the bootstrap stacks.

Every rule passes on every stack: a pair that does not is a defect of the templates (or of the rule),
never an expected failure. Each rule's failing templates live in test_rules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.templates.conftest import Built, stack_names
from tests.templates.test_templates_checks import BOOTSTRAP_STACKS, bootstrap_templates
from tooling import lint
from tooling.diagnostics import Diagnostic

RULES = [f"E9{n:03d}" for n in (*range(1, 20), 22, 23, *range(30, 46), *range(50, 56), 70)]
STACKS = [*stack_names(), *BOOTSTRAP_STACKS]  # the deployment stacks, and the bootstrap stacks


def _cases() -> list[Any]:
    return [pytest.param(rule, stack, id=f"{rule}-{stack}") for rule in RULES for stack in STACKS]


@pytest.fixture(scope="session")
def matrix_findings(built: dict[str, Built]) -> dict[str, list[Diagnostic]]:
    found = {
        name: lint.lint(item.text, item.deployment.spec.region, Path(f"{name}.json"), project_only=True)
        for name, item in built.items()
    }
    for name, text in bootstrap_templates().items():
        found[name] = lint.lint(text, "us-east-1", Path(f"{name}.json"), project_only=True)
    return found


def test_the_table_names_our_rules_and_the_matrix(rules: list[Any]) -> None:
    assert {r.id for r in rules} == set(RULES)


@pytest.mark.parametrize(("rule", "stack"), _cases())
def test_the_rule_passes_on_the_stack(
    matrix_findings: dict[str, list[Diagnostic]], rule: str, stack: str
) -> None:
    assert [f"{f.field}: {f.message}" for f in matrix_findings[stack] if f.code == rule] == []
