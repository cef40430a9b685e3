from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.templates.matrix import files
from tooling import repository
from tooling.render import render_deployment
from tooling.repository import DeploymentFile

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Built:
    deployment: DeploymentFile
    text: str

    @property
    def template(self) -> dict[str, Any]:
        return json.loads(self.text)

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = self.of_type(kind).values()
        return found["Properties"]


def _build_all(root: Path) -> dict[str, Built]:
    result = repository.load(root)
    assert result.errors == [], result.errors
    return {f.stack_name: Built(f, render_deployment(f).text) for f in result.valid}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every matrix spec and every example in deployments/, rendered once per worker."""
    root = tmp_path_factory.mktemp("matrix")
    for relative, text in files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return {**_build_all(root), **_build_all(ROOT)}


def stack_names() -> list[str]:
    from tests.templates.matrix import MATRIX

    matrix = [f"{env}-{name}" for env, specs in MATRIX.items() for name in specs]
    examples = [f"{p.parent.name}-{p.stem}" for p in sorted((ROOT / "deployments").glob("*/*.yaml"))]
    return matrix + [e for e in examples if not e.endswith("-_defaults")]
