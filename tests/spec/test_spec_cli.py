"""`deployctl validate`, `list`, `schema` and `docs` as users and CI run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.spec.conftest import VALID
from tooling import schema
from tooling.cli import cli

ROOT = Path(__file__).parents[2]
CORPUS = Path(__file__).parent / "corpus"
SECRET = "sk-proj-Xk29dLq8Vn3RbT7wYc5ZpA1fHs4Jm6Ge"


def run(*args: str, root: Path = ROOT) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_validate_the_examples() -> None:
    code, out = run("validate")
    assert code == 0, out
    # The one warning is SageMaker's documented 60 s limit, which applies to every SageMaker endpoint.
    assert "qwen2-5-vl-7b.yaml:16:12: warning: compute.service: SageMaker ends a non-streamed" in out
    assert out.strip().endswith("4 deployment file(s): 4 valid, 0 invalid; 0 error(s), 2 warning(s)")


def test_validate_reports_every_file_and_exits_1() -> None:
    code, out = run("validate", str(CORPUS / "deployments"), root=CORPUS)
    assert code == 1
    lines = out.splitlines()
    assert any(
        line.startswith(
            "tests/spec/corpus/deployments/staging/formats.yaml:24:18: error: compute.instance_type: "
        )
        for line in lines
    ), lines[:5]
    files = {line.split(":", 1)[0] for line in lines if ": error: " in line}
    assert len(files) > 20


def test_json_format_is_machine_readable() -> None:
    code, out = run(
        "validate", "--format", "json", str(CORPUS / "deployments/staging/formats.yaml"), root=CORPUS
    )
    assert code == 1
    data = json.loads(out)
    assert data["files"] == 1 and data["errors"] == len(data["diagnostics"]) == 13
    first = data["diagnostics"][0]
    assert first["location"] == {
        "file": "tests/spec/corpus/deployments/staging/formats.yaml",
        "line": 14,
        "col": 7,
    }
    assert (first["field"], first["code"], first["severity"]) == ("name", "SPEC005", "error")
    assert "3-32 characters" in first["hint"]


def test_github_format_annotates_lines() -> None:
    code, out = run(
        "validate", "--format", "github", str(CORPUS / "deployments/dev/secrets.yaml"), root=CORPUS
    )
    assert code == 1
    assert "::error file=tests/spec/corpus/deployments/dev/secrets.yaml,line=12,col=24,title=SPEC100::" in out


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_secrets_are_never_printed(fmt: str) -> None:
    code, out = run("validate", "--format", fmt, str(CORPUS / "deployments/dev/secrets.yaml"), root=CORPUS)
    assert code == 1
    assert "looks like an OpenAI-style API key" in out
    for fragment in (
        SECRET,
        SECRET[8:],
        "AKIAIOSFODNN7EXAMPLE",
        "hunter2pass",
        "Zx8Qp2Lm9Rt4Vw7Yb3Nc6Hd1Jf5Kg0Ts",
    ):
        assert fragment not in out


def test_a_secret_in_a_field_with_a_format_is_not_echoed_by_the_format_error(tree) -> None:
    root = tree({"deployments/dev/leak.yaml": VALID.format(name="leak") + f"network: {{vpc: {SECRET}}}\n"})
    code, out = run("validate", root=root)
    assert code == 1
    assert SECRET not in out
    assert "network.vpc: this looks like an OpenAI-style API key" in out
    assert "is not a valid vpc" not in out


def test_list_shows_every_deployment() -> None:
    code, out = run("list")
    assert code == 0
    for text in (
        "multimodal-api",
        "ecs-fargate",
        "8 vCPU / 16 GiB arm64",
        "llama-3-1-8b",
        "g5.xlarge",
        "1–4",
    ):
        assert text in out
    assert "g6.xlarge spot" in out and "+2 schedule(s)" in out
    assert "ml.g5.2xlarge" in out


def test_list_marks_invalid_files(tree) -> None:
    root = tree({"deployments/dev/bad.yaml": "name: bad\n"})
    code, out = run("list", root=root)
    assert code == 0
    assert "invalid" in out and "error(s)" in out


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = (ROOT / "deployments/schema.json").read_text(encoding="utf-8")
    assert committed == schema.schema_text(), "run `make schema`"
    data = json.loads(committed)
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(data["required"]) == {"name", "owner", "region", "model", "engine", "compute"}
    gpu_host = data["$defs"]["EcsGpuCompute"]
    (named, _null) = gpu_host["properties"]["instance_type"]["anyOf"]
    assert "g5.xlarge" in named["enum"]
    # One of instance_type and instance_types, as the validator enforces (SPEC260).
    assert gpu_host["oneOf"] == [{"required": ["instance_type"]}, {"required": ["instance_types"]}]


def test_readme_field_reference_is_up_to_date() -> None:
    code, out = run("docs", "--readme", str(ROOT / "README.md"), "--check")
    assert code == 0, out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for field in ("`compute.instance_type`", "`scaling.schedules[].cron`", "`engine.provider_key_secret`"):
        assert field in readme


def test_docs_check_fails_when_stale(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{schema.BEGIN}\nold\n{schema.END}\n", encoding="utf-8")
    code, out = run("docs", "--readme", str(readme), "--check")
    assert code == 1 and "out of date" in out
    code, _ = run("docs", "--readme", str(readme))
    assert code == 0
    assert "`compute.service`" in readme.read_text(encoding="utf-8")


def test_example_files_point_editors_at_the_schema() -> None:
    for path in (ROOT / "deployments").glob("*/*.yaml"):
        if path.name != "_defaults.yaml":
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert first == "# yaml-language-server: $schema=../schema.json", path


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "make plan" in head and "make test" in head


def _deployctl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "deployctl"
    return subprocess.run(
        [str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_console_script_finds_the_root_from_a_subfolder() -> None:
    done = _deployctl("validate", cwd=ROOT / "deployments" / "prod")
    assert done.returncode == 0, done.stderr
    assert "4 deployment file(s)" in done.stdout


def test_no_traceback_on_garbage(tree) -> None:
    root = tree(
        {
            "deployments/dev/blob.yaml": b"\x00\x01\x02\xff",
            "deployments/dev/list.yaml": "- a\n- b\n",
            "deployments/dev/deep.yaml": "a:" + " [" * 200 + "\n",
        }
    )
    done = _deployctl("validate", cwd=root)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.count(": error: ") == 3


def test_an_internal_error_is_one_line_not_a_traceback(tree) -> None:
    root = tree({"deployments/dev/x.yaml": VALID.format(name="x-1")})
    program = (
        "import sys, tooling.repository as r\n"
        "def boom(*a, **k): raise RuntimeError('secret-looking detail sk-should-not-print')\n"
        "r.load = boom\n"
        "sys.argv = ['deployctl', 'validate']\n"
        "from tooling.cli import main; main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYCTL_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 70
    assert "Traceback" not in done.stderr
    assert "internal error: RuntimeError at" in done.stderr
    assert "sk-should-not-print" not in done.stderr
