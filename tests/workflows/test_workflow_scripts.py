"""The shell the workflows run on GitHub's side, run here: the drift issue and the fork's plan comment.

Each `run:` script is taken from the workflow file as it is and run with bash the way `shell: bash`
runs it on a runner (`bash --noprofile --norc -eo pipefail`), its `env:` filled with test values, and a
fake `gh` first on PATH: it answers API reads from canned GitHub API responses (applying `--jq` with
jq, as gh does) and records every call, so the tests check which issue or comment is created, edited
or closed. jq must be installed (it is on GitHub's runners).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
MARKER = "<!-- deployctl-plan -->"

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("bash") is None, reason="needs bash and jq"
)

FAKE_GH = r'''#!PYTHON
"""A stand-in for the gh CLI: canned API reads, every call recorded."""
import json, os, shutil, subprocess, sys

args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
canned = json.load(open(os.environ["FAKE_GH_DATA"]))

def value(flag):
    return args[args.index(flag) + 1] if flag in args else None

def emit(data):
    jq = value("--jq")
    if jq is None:
        print(json.dumps(data))
        return
    out = subprocess.run(["jq", "-r", jq], input=json.dumps(data), capture_output=True, text=True, check=True)
    sys.stdout.write(out.stdout)

if args[:2] == ["issue", "list"]:
    emit(canned.get("issues", []))
elif args[:2] == ["run", "download"]:
    directory = value("--dir")
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.environ["FAKE_ARTIFACT"], os.path.join(directory, "comment.md"))
elif args[0] == "api":
    if "--method" in args:
        print("{}")
    else:
        path = next(a for a in args[1:] if not a.startswith("-") and a != value("--jq"))
        emit(canned["api"][path])
'''


def step(workflow: str, job: str, name_part: str) -> dict[str, Any]:
    jobs = yaml.safe_load((WORKFLOWS / f"{workflow}.yml").read_text())["jobs"]
    return next(s for s in jobs[job]["steps"] if name_part in s.get("name", ""))


def run_step(
    tmp_path: Path, found: dict[str, Any], env: dict[str, str], data: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.replace("PYTHON", sys.executable, 1))
    gh.chmod(0o755)
    (tmp_path / "gh.json").write_text(json.dumps(data))
    log = tmp_path / "gh.log"
    log.write_text("")
    script = tmp_path / "step.sh"
    script.write_text(found["run"])
    for key, expression in found.get("env", {}).items():
        assert key in env or "${{" not in str(expression), f"give the test a value for {key}"
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "RUNNER_TEMP": str(runner_temp),
            "FAKE_GH_LOG": str(log),
            "FAKE_GH_DATA": str(tmp_path / "gh.json"),
            **{k: str(v) for k, v in found.get("env", {}).items() if "${{" not in str(v)},
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return result, calls


# ---- drift.yml: one issue, deduplicated by title and label, closed when all is in sync -----------

TITLE = "Drift: stacks changed outside CloudFormation"
DRIFT_ENV = {
    "GH_TOKEN": "t",
    "GH_REPO": "o/r",
    "RUN_URL": "https://github.com/o/r/actions/runs/9",
}


def reports(tmp_path: Path, codes: dict[str, int | None]) -> None:
    for environment, code in codes.items():
        if code is None:
            continue  # that drift job left no artifact
        folder = tmp_path / "reports" / environment
        folder.mkdir(parents=True)
        (folder / "exit-code").write_text(f"{code}\n")
        table = (
            "| dev-x | DRIFTED | Queue | AWS::SQS::Queue | MODIFIED | /VisibilityTimeout |"
            if code == 2
            else ""
        )
        (folder / "report.md").write_text(f"**1 stacks**\n\n{table}\n")


def writes(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c[:2] != ["issue", "list"]]


def drift_step(tmp_path: Path, codes: dict[str, int | None], issues: list[dict[str, Any]]):
    reports(tmp_path, codes)
    return run_step(tmp_path, step("drift", "issue", "One issue"), DRIFT_ENV, {"issues": issues})


def test_drift_opens_one_labelled_issue(tmp_path: Path) -> None:
    result, calls = drift_step(tmp_path, {"dev": 0, "staging": 2, "prod": 0}, issues=[])
    assert result.returncode == 0, result.stderr
    (listing,) = [c for c in calls if c[:2] == ["issue", "list"]]
    assert listing[listing.index("--label") + 1] == "deployctl-drift"
    label, create = writes(calls)
    assert label[:2] == ["label", "create"] and "--force" in label
    assert create[:2] == ["issue", "create"]
    assert create[create.index("--title") + 1] == TITLE
    body = (tmp_path / "body.md").read_text()
    assert "## staging\n\n**Drifted.**" in body and "/VisibilityTimeout" in body
    assert "## dev\n\nIn sync." in body


def test_drift_updates_the_open_issue_instead_of_opening_another(tmp_path: Path) -> None:
    issues = [{"number": 3, "title": "Something else"}, {"number": 7, "title": TITLE}]
    result, calls = drift_step(tmp_path, {"dev": 2, "staging": 0, "prod": 2}, issues)
    assert result.returncode == 0, result.stderr
    (edit,) = writes(calls)
    assert edit[:3] == ["issue", "edit", "7"]


def test_drift_closes_the_issue_once_everything_is_in_sync(tmp_path: Path) -> None:
    result, calls = drift_step(tmp_path, {"dev": 0, "staging": 0, "prod": 0}, [{"number": 7, "title": TITLE}])
    assert result.returncode == 0, result.stderr
    (close,) = writes(calls)
    assert close[:3] == ["issue", "close", "7"]


def test_drift_in_sync_with_no_issue_writes_nothing(tmp_path: Path) -> None:
    result, calls = drift_step(tmp_path, {"dev": 0, "staging": 0, "prod": 0}, [])
    assert result.returncode == 0, result.stderr
    assert writes(calls) == []


def test_a_failed_or_missing_report_is_not_taken_for_in_sync(tmp_path: Path) -> None:
    result, calls = drift_step(
        tmp_path, {"dev": 1, "staging": None, "prod": 0}, [{"number": 7, "title": TITLE}]
    )
    assert result.returncode == 0, result.stderr
    (edit,) = writes(calls)
    assert edit[:3] == ["issue", "edit", "7"]
    body = (tmp_path / "body.md").read_text()
    assert "Detection failed" in body
    assert "## staging\n\n**No report**" in body


# ---- pr-comment.yml: the fork's comment, checked, posted on the pull request the API names ----------

SHA = "a" * 40
COMMENT_ENV = {"GH_TOKEN": "t", "REPO": "o/r", "RUN_ID": "7", "HEAD_SHA": SHA, "HEAD_REPO": "fork/r"}


def comment_step(tmp_path: Path, text: str, *, comments: list[dict[str, Any]] | None = None, head=SHA):
    artifact = tmp_path / "artifact.md"
    artifact.write_text(text)
    data = {
        "api": {
            "repos/o/r/actions/runs/7/artifacts": {"artifacts": [{"name": "plan-comment", "expired": False}]},
            "repos/o/r/pulls?state=open&per_page=100": [
                {"number": 4, "head": {"sha": "b" * 40, "repo": {"full_name": "fork/r"}}},
                {"number": 5, "head": {"sha": head, "repo": {"full_name": "fork/r"}}},
            ],
            "repos/o/r/issues/5/comments": comments or [],
        }
    }
    found = step("pr-comment", "comment", "Find the pull request")
    return run_step(tmp_path, found, {**COMMENT_ENV, "FAKE_ARTIFACT": str(artifact)}, data)


def posted(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "--method" in c]


def test_a_forks_plan_is_posted_on_its_pull_request_with_mentions_defused(tmp_path: Path) -> None:
    result, calls = comment_step(tmp_path, f"{MARKER}\n## deployctl plan\nping @octocat\n")
    assert result.returncode == 0, result.stderr
    (post,) = posted(calls)
    assert post[:4] == ["api", "--method", "POST", "repos/o/r/issues/5/comments"]
    body = (tmp_path / "runner-temp" / "body.md").read_text()
    assert "@" not in body and "&#64;octocat" in body


def test_the_existing_plan_comment_is_updated(tmp_path: Path) -> None:
    comments = [
        {"id": 11, "user": {"login": "someone"}, "body": f"{MARKER} quoted"},
        {"id": 12, "user": {"login": "github-actions[bot]"}, "body": f"{MARKER}\nold"},
    ]
    result, calls = comment_step(tmp_path, f"{MARKER}\nnew\n", comments=comments)
    assert result.returncode == 0, result.stderr
    (patch,) = posted(calls)
    assert patch[:4] == ["api", "--method", "PATCH", "repos/o/r/issues/comments/12"]


def test_an_artifact_without_the_marker_is_refused(tmp_path: Path) -> None:
    result, calls = comment_step(tmp_path, "Click here: https://example.com\n")
    assert result.returncode != 0
    assert "does not start with the plan marker" in result.stdout
    assert posted(calls) == []


def test_an_oversized_artifact_is_refused(tmp_path: Path) -> None:
    result, calls = comment_step(tmp_path, MARKER + "\n" + "x" * 70_000)
    assert result.returncode != 0
    assert posted(calls) == []


def test_no_open_pull_request_at_that_head_posts_nothing(tmp_path: Path) -> None:
    result, calls = comment_step(tmp_path, f"{MARKER}\nplan\n", head="c" * 40)
    assert result.returncode == 0, result.stderr
    assert posted(calls) == []


# ---- deploy.yml: the build matrices, and the release of a superseded commit ---------------------------


def fake_deployctl(tmp_path: Path, output: str) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    (tmp_path / "matrix-out.json").write_text(output)
    tool = venv / "deployctl"
    tool.write_text(f'#!/usr/bin/env bash\ncat "{tmp_path / "matrix-out.json"}"\n')
    tool.chmod(0o755)


def outputs(tmp_path: Path) -> dict[str, str]:
    text = (tmp_path / "output.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


@pytest.mark.parametrize(
    ("include", "gateway", "vllm"),
    [
        (
            [{"image": "gateway", "tag": "c1"}, {"image": "vllm", "version": "0.11.0", "tag": "0.11.0-c2"},
             {"image": "vllm", "version": "0.12.0", "tag": "0.12.0-c2"}],
            {"include": [{"image": "gateway", "tag": "c1"}]},
            {"include": [{"image": "vllm", "version": "0.11.0", "tag": "0.11.0-c2"},
                         {"image": "vllm", "version": "0.12.0", "tag": "0.12.0-c2"}]},
        ),
        ([{"image": "vllm", "version": "0.11.0", "tag": "0.11.0-c2"}], None,
         {"include": [{"image": "vllm", "version": "0.11.0", "tag": "0.11.0-c2"}]}),
        ([], None, None),
    ],
)  # fmt: skip
def test_one_build_matrix_per_image_and_none_when_nothing_is_missing(tmp_path, include, gateway, vllm):
    fake_deployctl(tmp_path, json.dumps({"include": include}))
    found = step("deploy", "images", "deployctl images --missing")
    result, _ = run_step(tmp_path, found, {"GITHUB_OUTPUT": str(tmp_path / "output.txt")}, {})
    assert result.returncode == 0, result.stderr
    got = outputs(tmp_path)
    # An empty output skips the build job (its `if`), before GitHub evaluates an empty matrix.
    assert (json.loads(got["gateway"]) if got["gateway"] else None) == gateway
    assert (json.loads(got["vllm"]) if got["vllm"] else None) == vllm


@pytest.mark.parametrize(("head", "current"), [("a" * 40, "true"), ("b" * 40, "false")])
def test_a_release_goes_ahead_only_for_the_head_of_main(tmp_path: Path, head: str, current: str) -> None:
    found = step("deploy", "release-prod", "still the head of main")
    output = str(tmp_path / "output.txt")
    env = {"GH_TOKEN": "t", "REPO": "o/r", "GITHUB_SHA": "a" * 40, "GITHUB_OUTPUT": output}
    result, calls = run_step(tmp_path, found, env, {"api": {"repos/o/r/commits/main": {"sha": head}}})
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == {"current": current}
    assert calls == [["api", "repos/o/r/commits/main", "--jq", ".sha"]]
    if current == "false":
        assert "main has moved on" in (tmp_path / "summary.md").read_text()
