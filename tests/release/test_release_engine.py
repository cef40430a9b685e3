"""What a release refuses before it changes anything, and how its report reads (no AWS reached)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.aws.conftest import git
from tests.release.conftest import ENVIRONMENTS, REPOSITORY, SPEC
from tooling.cli import cli
from tooling.release import engine, records

VPC = dict(vpc="vpc-0123456789abcdef0", subnets="subnet-0123456789abcdef0, subnet-0123456789abcdef1")


class Recorded:
    """A store whose latest record is given (the tests here never reach S3)."""

    def __init__(self, record: records.Record | None) -> None:
        self.record = record
        self.written: list[records.Record] = []

    def latest(self) -> tuple[records.Record | None, str | None]:
        return self.record, "etag" if self.record else None

    def write(self, record: records.Record, expected: str | None) -> str:
        raise AssertionError("a refused release writes no record")


def commit(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    (tmp_path / "deployments/staging").mkdir(parents=True)
    (tmp_path / "deployments/environments.yaml").write_text(ENVIRONMENTS, encoding="utf-8")
    (tmp_path / "deployments/staging/chat.yaml").write_text(
        SPEC.format(name="chat", region="us-east-1", model="gpt-4o", max=2, **VPC), encoding="utf-8"
    )
    (tmp_path / "inference_server").mkdir()
    (tmp_path / "inference_server/app.py").write_text("# gateway\n", encoding="utf-8")
    commit(tmp_path, "first")
    return tmp_path


def release(root: Path, **kwargs: Any) -> engine.Report:
    return engine.release(engine.Inputs(root, "staging", **kwargs))


def test_the_commit_released_is_the_checkouts(root: Path) -> None:
    first = git(root, "rev-parse", "HEAD")
    (root / "README.md").write_text("x", encoding="utf-8")
    commit(root)
    report = release(root, commit=first, store=Recorded(None))
    assert report.outcome == "refused"
    assert [(s.name, s.outcome) for s in report.steps] == [("checkout", "refused")]
    assert "is not the checkout's HEAD" in report.steps[0].detail


def test_a_file_that_does_not_load_stops_the_release_before_anything_changes(root: Path) -> None:
    path = root / "deployments/staging/chat.yaml"
    path.write_text(path.read_text().replace("max: 2", "max: 0"), encoding="utf-8")
    commit(root)
    report = release(root, store=Recorded(None))
    assert report.outcome == "refused"
    assert report.steps[-1].name == "load" and "chat.yaml" in report.steps[-1].detail
    assert report.stacks[0].deploy == ""  # nothing was deployed


def previous(commit: str) -> records.Record:
    return records.Record(
        "staging", commit, REPOSITORY, "2026-12-02T15:00:00+00:00", {}, "releases/staging/x.json"
    )


def test_a_commit_that_does_not_descend_from_the_last_release_is_superseded(root: Path) -> None:
    old = git(root, "rev-parse", "HEAD")
    (root / "README.md").write_text("x", encoding="utf-8")
    new = commit(root)
    git(root, "checkout", "-q", old)
    report = release(root, commit=old, store=Recorded(previous(new)))
    assert report.outcome == "superseded" and report.ok
    assert report.previous == new
    assert report.steps[-1].name == "previous" and "does not descend" in report.steps[-1].detail


def test_a_release_this_clone_cannot_place_is_refused(root: Path) -> None:
    report = release(root, store=Recorded(previous("d" * 40)))  # a commit this clone does not have
    assert (report.outcome, report.ok) == ("refused", False)
    assert "fetch-depth: 0" in report.steps[-1].detail


def test_the_cli_writes_the_report_as_json_and_renders_it_as_markdown(root: Path, tmp_path: Path) -> None:
    (root / "deployments/staging/chat.yaml").write_text("name: [", encoding="utf-8")
    commit(root)
    result = CliRunner().invoke(cli, ["--root", str(root), "release", "staging", "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert {"environment", "commit", "outcome", "steps", "stacks"} <= set(report)
    assert (report["environment"], report["outcome"]) == ("staging", "refused")
    saved = tmp_path / "report.json"
    saved.write_text(result.stdout, encoding="utf-8")
    result = CliRunner().invoke(cli, ["release", "--summary", str(saved)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"### Release of `staging` at `{report['commit'][:12]}`: ⛔ refused")
    assert "| load | ⛔ refused |" in result.output


def test_the_summary_shows_what_failed_and_how_it_was_rolled_back() -> None:
    from tooling.release import summary

    smoke = {"ok": False, "checks": [{"name": "chat", "ok": False, "detail": "HTTP 502 | bad"}]}
    stack = {"stack_name": "prod-chat", "region": "us-east-1", "deploy": "updated", "reasons": [],
             "image_tags": {"GatewayImageTag": "a" * 40}, "rollback": "updated", "rollback_reasons": [],
             "smoke": smoke}  # fmt: skip
    report = {
        "environment": "prod", "commit": "a" * 40, "outcome": "rolled-back", "previous": "b" * 40,
        "record": "", "steps": [{"name": "smoke", "outcome": "failed", "detail": "1/2 passed"}],
        "stacks": [stack],
    }  # fmt: skip
    text = summary.to_markdown(report)
    assert "↩️ failed and rolled back" in text
    assert f"Previous release: `{'b' * 12}`." in text
    assert "| prod-chat | us-east-1 | updated | ❌ | updated |" in text
    assert "- `prod-chat` smoke chat: HTTP 502 \\| bad" in text


def test_release_needs_an_environment_unless_it_renders_a_summary(root: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(root), "release"])
    assert result.exit_code == 2 and "name the ENVIRONMENT" in result.output
    result = CliRunner().invoke(cli, ["--root", str(root), "release", "nowhere"])
    assert result.exit_code == 1 and "no such environment" in result.output


def test_the_text_report_names_each_step(root: Path) -> None:
    (root / "deployments/staging/chat.yaml").write_text("name: [", encoding="utf-8")
    commit(root)
    result = CliRunner().invoke(cli, ["--root", str(root), "release", "staging"])
    assert result.exit_code == 1
    assert "Release of staging at" in result.stdout and ": refused" in result.stdout
    assert "load: refused: " in result.stdout and "chat.yaml:2:1: error: YAML syntax" in result.stdout
    assert "release checkout: ok" in result.stderr  # progress goes to stderr


def test_an_unexpected_failure_is_a_failed_report_not_a_traceback(root: Path) -> None:
    class Broken(Recorded):
        def latest(self) -> tuple[records.Record | None, str | None]:
            raise ConnectionError("the endpoint went away")

    report = release(root, store=Broken(None))
    assert (report.outcome, report.ok) == ("failed", False)
    assert report.steps[-1].name == "error"
    assert "ConnectionError: the endpoint went away" in report.steps[-1].detail


def test_a_quota_the_environment_would_exceed_refuses_the_release_before_any_change(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tooling import quotas

    check = quotas.QuotaCheck("us-east-1", "ec2", "L-DB2E81BA", "Running On-Demand G and VT instances",
                              "vCPUs", 64.0, 32.0, 0.0, 48.0, ["staging-chat"])  # fmt: skip
    asked: list[list[str]] = []

    def for_deploy(stack_names: list[str], root: Path, clients: Any = None) -> quotas.Report:
        asked.append(list(stack_names))
        return quotas.Report(True, [check])

    monkeypatch.setattr(quotas, "for_deploy", for_deploy)
    report = release(root, store=Recorded(None))
    assert asked == [["staging-chat"]]  # every stack of the environment, at its maximum scale
    assert (report.outcome, report.steps[-1].name) == ("refused", "quotas")
    assert "L-DB2E81BA" in report.steps[-1].detail
    assert report.stacks[0].deploy == ""


def test_json_callers_get_every_refusal_as_a_report_and_an_empty_one_still_summarises(
    root: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["--root", str(root), "release", "nowhere", "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["outcome"], report["steps"][-1]["name"]) == ("refused", "load")
    assert "no environment nowhere" in report["steps"][-1]["detail"]
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["release", "--summary", str(empty)])
    assert result.exit_code == 0 and "no report" in result.output
    empty.write_text("{not json", encoding="utf-8")
    result = CliRunner().invoke(cli, ["release", "--summary", str(empty)])
    assert result.exit_code == 2 and "not a `release --format json` report" in result.output
