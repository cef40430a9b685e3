"""Issue 14 #9: every CLI input gives a located one-line error or a clear message, never a traceback
(exit 70 "internal error") and never a silent exit 0; a `--root` checkout renders with its own code."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tooling import repository
from tooling.cli import cli

ROOT = Path(__file__).parents[2]


def git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    return subprocess.run(
        ["git", *env_args, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for folder in ("deployments", "templates", "tooling"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    """As the user runs it: the entry point's error handling included (an internal error is exit 70)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        return 70, f"internal error: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, result.output


def test_symlinked_and_dangling_files_are_located_errors(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "linked.yaml"
    outside.write_text((repo / "deployments/dev/mistral-7b.yaml").read_text().replace("mistral-7b", "linked"))
    (repo / "deployments/dev/linked.yaml").symlink_to(outside)
    (repo / "deployments/dev/dangling.yaml").symlink_to(repo / "deployments/dev/gone.yaml")
    code, out = run("--root", str(repo), "validate")
    assert code == 1
    assert "dev/linked.yaml:1:1: error: a symlink" in out and "[REPO006]" in out
    assert "dev/dangling.yaml:1:1: error: a dangling symlink" in out
    for command in (["render", "--no-lint", "--out", str(repo / "build")], ["plan", "--against", "git:HEAD"]):
        code, out = run("--root", str(repo), *command)
        assert code == 1, out
        assert "REPO006" in out and "internal error" not in out


def test_an_unreadable_file_is_a_located_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = (repo / "deployments/dev/mistral-7b.yaml").resolve()
    real_bytes, real_text = Path.read_bytes, Path.read_text

    def deny(path: Path, real):  # root reads anything: refuse as a mode-000 file would
        if path.resolve() == secret:
            raise PermissionError(13, "Permission denied", str(path))
        return real

    monkeypatch.setattr(Path, "read_bytes", lambda p: deny(p, real_bytes)(p))
    monkeypatch.setattr(Path, "read_text", lambda p, *a, **k: deny(p, real_text)(p, *a, **k))
    code, out = run("--root", str(repo), "plan", "--against", "git:HEAD", "--no-cache")
    assert code == 1, out
    assert "dev/mistral-7b.yaml:1:1: error: cannot read: Permission denied [YAML002]" in out


def test_an_unreadable_folder_is_an_error_not_empty(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = (repo / "deployments/staging").resolve()
    real = os.scandir

    def scandir(path="."):
        if Path(path).resolve() == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = repository.load(repo)
    assert [d.code for d in result.errors] == ["REPO005"]
    assert result.errors[0].location.file == folder


def test_a_read_only_cache_runs_without_it(repo: Path) -> None:
    (repo / ".deployctl-cache").write_text("not a folder")  # as unwritable as a read-only one, for root too
    code, out = run("--root", str(repo), "plan", "--against", "git:HEAD")
    assert code == 0, out
    assert "warning: cache not writable" in out


def test_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run("--root", str(tmp_path / "nowhere"), "plan")
    assert code == 2
    assert "does not exist" in out


def test_paths_that_select_nothing_are_errors(repo: Path) -> None:
    code, out = run(
        "--root", str(repo), "plan", "--against", "git:HEAD", str(repo / "deployments/dev/nope.yaml")
    )
    assert (code, "no such file or folder" in out) == (1, True), out
    (repo / "elsewhere.yaml").write_text("name: x\n")
    code, out = run("--root", str(repo), "plan", "--against", "git:HEAD", str(repo / "elsewhere.yaml"))
    assert (code, "not under" in out) == (1, True), out


def test_an_unknown_environment_names_the_known_ones(repo: Path) -> None:
    code, out = run("--root", str(repo), "deploy", "-e", "pord")
    assert code == 1
    assert "--environment pord: no such environment; environments: dev, prod, staging" in out


def test_git_bases_extract_without_tarfile_filters(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11.2 (Debian 12) has no `filter=` argument on extractall."""
    monkeypatch.delattr(tarfile, "data_filter")
    real = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
        if kwargs:
            raise TypeError(f"extractall() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return real(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    code, out = run("--root", str(repo), "plan", "--against", "git:HEAD", "--no-cache")
    assert code == 0, out
    assert "unchanged" in out


def test_root_renders_with_its_own_code_and_a_raising_builder_is_located(repo: Path) -> None:
    stack = repo / "templates/stack.py"
    text = stack.read_text()
    marker = '    template.set_version("2010-09-09")\n'
    stack.write_text(
        text.replace(
            marker,
            marker
            # Only the checkout's own code raises: rendered with the installed code, nothing would.
            + '    if spec.name == "mistral-7b":\n        raise RuntimeError("builder bug")\n',
        )
    )
    code, out = run("--root", str(repo), "render", "--no-lint", "--out", str(repo / "build"))
    assert code == 1, out
    assert (
        "deployments/dev/mistral-7b.yaml:1:1: error: rendering this deployment failed: "
        "RuntimeError: builder bug" in out
    )
    assert "RENDER001" in out and "internal error" not in out
    assert (repo / "build/prod/llama-3-1-8b.json").is_file()  # the other stacks still render


def test_regional_quotas_across_deployments(tmp_path: Path) -> None:
    spec = (
        "name: {name}\nowner: t@example.com\nregion: us-east-1\nmodel: {{id: gpt-4o}}\n"
        "engine: {{type: external, base_url: 'https://api.openai.com/v1', "
        "provider_key_secret: team/openai}}\n"
        "compute: {{service: ecs-fargate}}\nnetwork: {{vpc: new, nat_gateways: 2}}\n"
    )
    (tmp_path / "deployments/dev").mkdir(parents=True)
    for i in range(6):
        (tmp_path / f"deployments/dev/svc-{i}.yaml").write_text(spec.format(name=f"svc-{i}"))
    result = repository.load(tmp_path)
    found = {(d.location.file.name, d.code) for d in result.warnings if d.code.startswith("SPEC24")}
    # 2 NAT gateways each: the third deployment needs EIPs 5 and 6; the sixth needs a sixth VPC.
    assert ("svc-2.yaml", "SPEC243") in found and ("svc-1.yaml", "SPEC243") not in found
    assert ("svc-5.yaml", "SPEC242") in found and ("svc-4.yaml", "SPEC242") not in found
    assert not result.errors
    messages = [d.message for d in result.warnings if d.code == "SPEC242"]
    assert "'VPCs per Region' (L-F678F1CE, 5 by default)" in messages[0]
