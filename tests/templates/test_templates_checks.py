"""cfn-lint and checkov over every template the matrix and the examples render."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.templates.conftest import ROOT, Built, stack_names
from tooling import lint

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.parametrize("stack", stack_names())
def test_cfn_lint_finds_nothing(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    problems = lint.lint(item.text, item.deployment.spec.region, Path(f"{stack}.json"))
    # The project's own rules (E9xxx/W9xxx) run here too; tests/cfn_rules/test_matrix.py checks them per
    # rule and stack, with the known failures of the templates marked there.
    assert [f"{p.code} {p.field}: {p.message}" for p in problems if p.code[1:2] != "9"] == []


def test_lint_reports_a_broken_template_with_its_location() -> None:
    text = json.dumps(
        {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"DelaySeconds": "soon"}}}},
        indent=1,
    )
    (problem, *_) = lint.lint(text, "us-east-1", Path("t.json"))
    assert problem.code.startswith("E")
    assert problem.field == "Resources/Queue/Properties/DelaySeconds"
    assert problem.location.line == 6


@pytest.mark.slow
def test_checkov_fails_no_check_and_every_exception_has_a_reason(
    built: dict[str, Built], tmp_path: Path
) -> None:
    assert CHECKOV.exists(), (
        "checkov lives in .venv-checkov (it pins an older boto3); `make test` installs it"
    )
    for name, item in built.items():
        (tmp_path / f"{name}.json").write_text(item.text, encoding="utf-8")
    for name, text in bootstrap_templates().items():
        (tmp_path / f"{name}.json").write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--framework", "cloudformation", "--output", "json",
         "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )  # fmt: skip
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert skipped, "the exceptions made on purpose show up as skipped checks"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 100 * len(built) / 2


def bootstrap_templates() -> dict[str, str]:
    """The regional stack and account stacks: the CI account's, and one holding three environments."""
    from templates import bootstrap
    from templates.stack import render

    return {
        "bootstrap-regional": render(bootstrap.build_regional()),
        "bootstrap-account-ci": render(
            bootstrap.build_account(("dev",), "acme/models", ci_registry=True, ci_region="us-east-1")
        ),
        "bootstrap-account": render(
            bootstrap.build_account(("dev", "staging", "prod"), "acme/models", ci_registry=False)
        ),
    }


BOOTSTRAP_STACKS = ("bootstrap-regional", "bootstrap-account-ci", "bootstrap-account")


@pytest.mark.parametrize("name", BOOTSTRAP_STACKS)
def test_the_bootstrap_stacks_lint_clean(name: str) -> None:
    text = bootstrap_templates()[name]
    assert [f"{p.code} {p.field}: {p.message}" for p in lint.lint(text, "us-east-1", Path("b.json"))] == []
