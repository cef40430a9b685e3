"""The image installs exactly the gateway's pinned set: requirements.txt and pyproject's extra agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_match_the_gateway_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["gateway"]
    lines = (ROOT / "inference_server/requirements.txt").read_text().splitlines()
    pinned = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(pinned) == sorted(extra)
    assert all("==" in requirement for requirement in pinned)
