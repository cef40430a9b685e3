"""Stack builders are pure: same spec, same bytes; no AWS SDK, network or clock; oversize flagged."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from templates.stack import INLINE_LIMIT, inline_size
from tests.templates.conftest import ROOT, Built, stack_names
from tooling.cli import cli
from tooling.render import Rendered

IMPURE = {
    "boto3",
    "botocore",
    "requests",
    "urllib",
    "socket",
    "time",
    "datetime",
    "random",
    "uuid",
    "secrets",
}


def imports(folder: Path) -> dict[str, set[str]]:
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_stack_builders_import_nothing_impure() -> None:
    offenders = {
        path: sorted(names & IMPURE)
        for path, names in imports(ROOT / "templates").items()
        if names & IMPURE
        and not path.endswith("rotation_handler.py")  # runs in Lambda, not at build
        and not path.startswith("templates/runtime/")  # runs on instances and in Lambda, shipped as text
    }
    assert offenders == {}


def test_the_gateway_ships_alone() -> None:
    offenders = {p: n & {"tooling", "templates"} for p, n in imports(ROOT / "inference_server").items()}
    assert {p: n for p, n in offenders.items() if n} == {}


def test_rendering_is_deterministic_across_processes(built: dict[str, Built]) -> None:
    program = (
        "import sys, hashlib\n"
        "from pathlib import Path\n"
        "from tooling import repository\n"
        "from tooling.render import render_deployment\n"
        "for f in repository.load(Path(sys.argv[1])).valid:\n"
        "    print(f.stack_name, hashlib.sha256(render_deployment(f).text.encode()).hexdigest())\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", program, str(ROOT)],
            capture_output=True, text=True, check=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        outputs.add(done.stdout)
    assert len(outputs) == 1
    import hashlib

    here = {
        f"{name} {hashlib.sha256(item.text.encode()).hexdigest()}"
        for name, item in built.items()
        if item.deployment.path.is_relative_to(ROOT / "deployments")
    }
    assert set(outputs.pop().split("\n")) - {""} == here


def test_render_writes_byte_identical_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = CliRunner().invoke(cli, ["--root", str(ROOT), "render", "--out", str(out), "--no-lint"])
        assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(first) for p in first.rglob("*.json"))
    assert [str(f) for f in files] == [
        "dev/mistral-7b.json",
        "prod/llama-3-1-8b.json",
        "prod/multimodal-api.json",
        "staging/qwen2-5-vl-7b.json",
    ]
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes()


@pytest.mark.slow
def test_render_lints_and_reports_sizes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(ROOT), "render", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "prod-llama-3-1-8b" in result.output
    assert result.output.count("clean") == 4


def test_render_refuses_invalid_specs(tmp_path: Path) -> None:
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/bad.yaml").write_text("name: bad\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "render", "--out", str(tmp_path / "build")])
    assert result.exit_code == 1
    assert "required field is missing" in result.output
    assert not (tmp_path / "build/dev/bad.json").exists()


def test_oversize_templates_are_flagged(built: dict[str, Built]) -> None:
    # The smallest of the matrix: internal stacks (with their smoke probe) are over the inline limit.
    item = min(built.values(), key=lambda b: inline_size(b.text))
    small = Rendered(item.deployment, item.text, 1)
    assert not small.oversize
    padded = item.text.replace('"Description":', '"Description": "' + "x" * INLINE_LIMIT + '", "_":', 1)
    big = Rendered(item.deployment, padded, 1)
    assert inline_size(padded) > INLINE_LIMIT
    assert big.oversize


# A TemplateURL's object may hold at most this many bytes (the CreateChangeSet and ValidateTemplate API
# references; the quotas page now says 1 MB, the smaller figure is the one every API still documents).
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html
TEMPLATE_URL_LIMIT = 460_800


@pytest.mark.parametrize("stack", stack_names())
def test_every_template_fits_what_cloudformation_reads_from_s3(built: dict[str, Built], stack: str) -> None:
    # Inline code (the smoke probe's, the host cleanup's) makes templates grow: those over the inline
    # limit go through the artifacts bucket, and must still fit there.
    assert inline_size(built[stack].text) < TEMPLATE_URL_LIMIT
