"""The rules read the way cfn-lint's do, and cfn-lint runs them wherever we lint."""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cfnlint.rules import CloudFormationLintRule

from tests.templates.conftest import ROOT
from tooling import cfn_rules, lint
from tooling.snapshot import code_version

AWS_DOCS = {"docs.aws.amazon.com"}


def test_one_rule_a_module() -> None:
    assert len(cfn_rules.MODULES) >= 13
    for name in cfn_rules.MODULES:
        module = importlib.import_module(name)
        classes = [
            c
            for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, CloudFormationLintRule) and c.__module__ == name
        ]
        assert len(classes) == 1, name
        assert module.__doc__ and module.__doc__.startswith(f"{classes[0].id}: "), name


def test_every_rule_says_what_it_enforces_and_where_aws_documents_it(rules: list[Any]) -> None:
    for rule in rules:
        assert re.fullmatch(r"[EW]9\d{3}", rule.id), rule.id
        assert 10 < len(rule.shortdesc) < 80, rule.id
        assert len(rule.description) > 80, rule.id
        url = urlparse(rule.source_url)
        assert url.scheme == "https" and url.netloc in AWS_DOCS and url.path.endswith(".html"), rule.id
        assert rule.tags and all(isinstance(tag, str) for tag in rule.tags), rule.id


def test_rule_ids_are_unique_and_apart_from_cfn_lints(rules: list[Any]) -> None:
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids))
    _, everything = lint._runner("us-east-1")
    ours = {i for i in everything if i[1:2] == "9"}
    assert ours == set(ids)  # appended to cfn-lint's rules, which use no 9xxx ids
    assert len(everything) > 200


def test_the_rules_are_built_once_per_process() -> None:
    assert lint._runner("eu-west-1") is lint._runner("eu-west-1")
    assert lint.project_rules()[0] is lint.project_rules()[0]


def test_lint_reports_our_findings_with_cfn_lints() -> None:
    text = (
        '{"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.12",'
        ' "Handler": "index.handler", "Role": "arn:aws:iam::123456789012:role/r",'
        ' "Code": {"ZipFile": "x"}, "ReservedConcurrentExecutions": 1, "Timeout": "soon"}}}}'
    )
    codes = {p.code for p in lint.lint(text, "us-east-1", Path("t.json"))}
    assert "E9005" in codes
    assert any(c.startswith("E3") for c in codes)


def test_the_lint_cache_key_changes_with_a_rule(tmp_path: Path) -> None:
    for copy in ("a", "b", "c"):
        for folder in ("templates", "tooling"):
            shutil.copytree(
                ROOT / folder, tmp_path / copy / folder, ignore=shutil.ignore_patterns("__pycache__")
            )
    rule = tmp_path / "c" / "tooling" / "cfn_rules" / "lambda_reserved_concurrency.py"
    rule.write_text(rule.read_text() + "\n# changed\n", encoding="utf-8")  # (code_version is memoized)
    assert code_version(tmp_path / "a") == code_version(tmp_path / "b")
    assert code_version(tmp_path / "a") != code_version(tmp_path / "c")
