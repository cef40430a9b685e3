from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

VALID = """\
name: {name}
owner: team@example.com
region: us-east-1
model: {{id: meta-llama/Llama-3.1-8B-Instruct}}
engine: {{type: vllm}}
compute: {{service: ecs-gpu, instance_type: g5.xlarge, ami_id: ami-0123456789abcdef0}}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """Write a repository of files ({relative path: text}) and return its root."""

    def make(files: dict[str, str | bytes]) -> Path:
        for relative, content in files.items():
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        (tmp_path / "deployments").mkdir(exist_ok=True)
        return tmp_path

    return make
