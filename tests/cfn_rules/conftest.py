from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.templates.conftest import built  # noqa: F401 - the matrix, rendered once per worker
from tooling import lint
from tooling.diagnostics import Diagnostic


def findings(template: dict[str, Any], region: str = "us-east-1") -> list[Diagnostic]:
    """Our rules' findings on one template (cfn-lint's own rules are tested by cfn-lint)."""
    text = json.dumps({"AWSTemplateFormatVersion": "2010-09-09", **template}, indent=1)
    return lint.lint(text, region, Path("t.json"), project_only=True)


@pytest.fixture(scope="session")
def rules() -> list[Any]:
    return lint.project_rules()
