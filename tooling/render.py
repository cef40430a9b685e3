"""Specs to CloudFormation files: `build/<environment>/<name>.json`, the same bytes for the same spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from templates import build, render
from templates.stack import INLINE_LIMIT, inline_size
from tooling.repository import DeploymentFile


@dataclass(frozen=True)
class Rendered:
    deployment: DeploymentFile
    text: str
    resources: int

    @property
    def inline_size(self) -> int:
        return inline_size(self.text)

    @property
    def oversize(self) -> bool:
        """Over CloudFormation's inline limit: the deploy engine uploads it to the artifacts bucket."""
        return self.inline_size > INLINE_LIMIT

    def path(self, out: Path) -> Path:
        return out / self.deployment.environment / f"{self.deployment.name}.json"


def render_deployment(deployment: DeploymentFile) -> Rendered:
    if deployment.spec is None:
        raise ValueError(f"{deployment.path} is not valid; validate before rendering")
    template = build(deployment.spec, deployment.environment)
    return Rendered(deployment, render(template), len(template.resources))


def write(rendered: Rendered, out: Path) -> Path:
    return write_text(rendered.text, rendered.path(out))


def write_text(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only rewrite changed files, so timestamps (and make) see what really changed.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path
