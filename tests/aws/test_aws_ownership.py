"""Issue 14 #1, #2, #3, #8 against the AWS emulator: prune by ownership, region moves, deploys that
never move a stack back, plans that make change sets for the environment planned only."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import boto3
import pytest

from tooling import changesets, deploy
from tooling import cloudformation as cf
from tooling.ownership import find
from tooling.snapshot import Snapshot, StackState

pytestmark = pytest.mark.slow
TOPIC = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
QUEUE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
REPO = "acme/models"


def st(env: str, name: str, region: str = "us-east-1", text: str = TOPIC, file: str = "") -> StackState:
    return StackState(env, name, file or f"deployments/{env}/{name}.yaml", region, text)


def options(repository: str = REPO, **extra: object) -> deploy.Options:
    return deploy.Options(timeout=120, repository=repository, regions={"us-east-1"}, **extra)  # type: ignore[arg-type]


def up(states: list[StackState], opts: deploy.Options | None = None) -> None:
    results = deploy.deploy_all(states, opts or options(), threading.Event())
    assert {r.outcome for r in results} == {"created"}, [r.reasons for r in results]


def live(region: str = "us-east-1") -> set[str]:
    cfn = boto3.client("cloudformation", region_name=region)
    return {s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"}


def test_prune_deletes_only_this_repositorys_stacks_of_these_environments(aws_env: str) -> None:
    up([st("dev", "keep"), st("dev", "gone"), st("staging", "other-env")])
    up([st("dev", "foreign")], options("someone/else"))  # another repository using deployctl here
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="dev-legacy",
        TemplateBody=TOPIC,  # ours from before stacks named their repository
        Tags=[
            {"Key": "deployctl:managed-by", "Value": "deployctl"},
            {"Key": "deployctl:environment", "Value": "dev"},
        ],
    )
    listed: list[str] = []
    head = Snapshot({"dev-keep": st("dev", "keep")})  # dev/gone.yaml was removed
    results = deploy.prune(head, {"dev"}, options=options(), cancel=threading.Event(), on_list=listed.extend)
    assert [(r.stack_name, r.outcome) for r in results] == [("dev-gone", "deleted")]
    assert listed == ["dev-gone (us-east-1): deployments/dev/gone.yaml is gone"]
    assert live() == {"dev-keep", "staging-other-env", "dev-foreign", "dev-legacy"}


def test_prune_refuses_while_a_file_of_the_environment_did_not_load(aws_env: str) -> None:
    up([st("dev", "keep"), st("dev", "broken")])
    broken = StackState("dev", "broken", "deployments/dev/broken.yaml", "", None, errors=["...: YAML syntax"])
    head = Snapshot({"dev-keep": st("dev", "keep"), "dev-broken": broken})
    results = deploy.prune(head, {"dev"}, options=options(), cancel=threading.Event())
    assert [r.outcome for r in results] == ["refused"]
    dangling = Snapshot(
        {"dev-keep": st("dev", "keep")}, problems=["deployments/dev/x.yaml: a dangling symlink"]
    )
    results = deploy.prune(dangling, {"dev"}, options=options(), cancel=threading.Event())
    assert [r.outcome for r in results] == ["refused"]
    assert live() == {"dev-keep", "dev-broken"}


def test_a_name_that_differs_from_its_file_keeps_the_live_stack(aws_env: str) -> None:
    up([st("dev", "keep")])
    typo = Snapshot({"dev-kep": st("dev", "kep", file="deployments/dev/keep.yaml")})
    results = deploy.prune(typo, {"dev"}, options=options(), cancel=threading.Event())
    assert [r.outcome for r in results] == ["skipped"]
    assert "deployments/dev/keep.yaml still exists but now names dev-kep" in results[0].reasons[0]
    assert live() == {"dev-keep"}


def test_a_region_change_creates_in_the_new_region_and_deletes_in_the_old(aws_env: str) -> None:
    up([st("dev", "mover"), st("dev", "stays")])
    head = Snapshot({"dev-mover": st("dev", "mover", "us-west-2"), "dev-stays": st("dev", "stays")})
    plan = changesets.plan(head, image_tag=None, repository=REPO)
    moves = sorted((s.action, s.region) for s in plan.stacks if s.stack_name == "dev-mover")
    assert moves == [("create", "us-west-2"), ("delete", "us-east-1")], plan.problems
    up([head.stacks["dev-mover"]])
    results = deploy.prune(head, {"dev"}, options=options(), cancel=threading.Event())
    assert [(r.stack_name, r.outcome) for r in results] == [("dev-mover", "deleted")]
    assert (live("us-east-1"), live("us-west-2")) == ({"dev-stays"}, {"dev-mover"})
    # The new stack records where our stacks are, so a later search from us-west-2 alone finds both.
    assert {r for r, _ in find(REPO, {"us-west-2"}).stacks} == {"us-west-2", "us-east-1"}


def test_the_plan_of_one_environment_makes_change_sets_for_it_only(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    up([st("staging", "gone")])
    made: list[str] = []
    real = cf.create_change_set

    def spy(cfn: object, name: str, *args: object, **kwargs: object) -> str:
        made.append(name)
        return real(cfn, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cf, "create_change_set", spy)
    head = Snapshot({"dev-a": st("dev", "a"), "staging-b": st("staging", "b")})
    plan = changesets.plan(head, image_tag=None, only={"dev-a"}, repository=REPO)
    assert made == ["dev-a"]
    assert {s.stack_name: s.action for s in plan.stacks} == {
        "dev-a": "create"
    }  # staging-gone: not its business
    assert live() == {"staging-gone"}  # and no review shell is left


def git(repo: Path, *args: str) -> str:
    env = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    return subprocess.run(
        ["git", *env, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_deploy_never_moves_a_stack_back_without_allow_revert(aws_env: str, tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "one")
    older = git(tmp_path, "rev-parse", "HEAD")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "two")
    newer = git(tmp_path, "rev-parse", "HEAD")
    up([st("dev", "svc", text=QUEUE)], options(commit=newer, root=tmp_path))
    tags = cf.tags_of(
        boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName="dev-svc")[
            "Stacks"
        ][0]
    )
    assert (tags["deployctl:commit"], tags["deployctl:repository"], tags["deployctl:file"]) == (
        newer,
        REPO,
        "deployments/dev/svc.yaml",
    )

    behind = deploy.deploy_stack(st("dev", "svc"), options(commit=older, root=tmp_path), threading.Event())
    assert behind.outcome == "refused"
    assert f"runs commit {newer[:12]}, which is not an ancestor" in behind.reasons[0]
    allowed = options(commit=older, root=tmp_path, allow_revert=True)
    assert deploy.deploy_stack(st("dev", "svc"), allowed, threading.Event()).outcome == "updated"
