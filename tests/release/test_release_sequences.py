"""Release sequences against the AWS emulator: each ends with every stack of the environment at the
state the last successful release recorded."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.aws.conftest import git
from tests.release.conftest import (
    REGION,
    Checkout,
    Smoke,
    assert_at_record,
    deployed_template,
    latest_record,
    live_stacks,
    parameters_of,
)
from tooling import cloudformation as cf
from tooling import smoke
from tooling.ownership import COMMIT_TAG
from tooling.release import images

pytestmark = pytest.mark.slow


def stacks_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["stack_name"]: s for s in report["stacks"]}


def max_capacity(template: dict[str, Any]) -> int:
    (target,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    ]
    return int(target["Properties"]["MaxCapacity"])


def test_a_new_deployment_merged_alone_deploys_with_the_tags_its_checkout_names(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    checkout.spec("staging", "chat")
    first = gateway = checkout.commit("the gateway and a first deployment")
    code, report, _ = checkout.release("staging", "--commit", first)
    assert code == 0, report["steps"]
    assert report["outcome"] == "released"
    assert [s["name"] for s in report["steps"]] == [
        "checkout", "load", "previous", "quotas", "deploy", "smoke", "prune", "record"
    ]  # fmt: skip
    assert_at_record("staging", commit=first)

    # A deployment merged alone rebuilds no image: it runs the images the checkout names, the ones
    # built when the gateway last changed.
    checkout.spec("staging", "summarise", model="gpt-4o-mini")
    second = checkout.commit("a new deployment alone")
    code, report, _ = checkout.release("staging", "--commit", second)
    assert code == 0, report["steps"]
    stacks = stacks_of(report)
    assert stacks["staging-summarise"]["deploy"] == "created"
    assert stacks["staging-summarise"]["image_tags"] == {"GatewayImageTag": gateway}
    assert stacks["staging-chat"]["deploy"] == "unchanged"  # the fast path: no change set
    assert parameters_of(live_stacks("staging")["staging-summarise"]) == {"GatewayImageTag": gateway}
    assert images.image_commit(checkout.root, "gateway") == gateway != second
    # Only what changed is smoke-tested.
    assert [d.stack_name for d, _ in fake_smoke.calls] == ["staging-chat", "staging-summarise"]
    record = assert_at_record("staging", commit=second)
    assert record.stacks["staging-summarise"].image_tags == {"GatewayImageTag": gateway}

    # A re-run of the same run: every stack is on the fast path, and the record stands.
    code, report, _ = checkout.release("staging", "--commit", second)
    assert (code, report["outcome"]) == (0, "unchanged")
    assert {s["deploy"] for s in report["stacks"]} == {"unchanged"}
    assert report["steps"][-1]["name"] == "record" and report["steps"][-1]["outcome"] == "skipped"
    assert report["record"] == record.key


def test_two_merges_while_prod_waits_are_both_released_by_the_later_commit(checkout: Checkout) -> None:
    checkout.spec("prod", "chat")
    base = checkout.commit("prod's first deployment")
    assert checkout.release("prod")[0] == 0
    # Two merges; each run deploys staging and waits for prod's reviewers.
    checkout.spec("prod", "chat", max=3)
    first = checkout.commit("chat may scale to 3")
    checkout.spec("prod", "embed", model="text-embedding-3-small")
    checkout.write("inference_server/app.py", "# the gateway, fixed\n")
    second = checkout.commit("an embedding endpoint, and a gateway fix")
    assert base != first != second

    # The later run is approved first: its checkout holds both merges, and prod converges on it.
    code, report, _ = checkout.release("prod", "--commit", second)
    assert code == 0, report["steps"]
    assert report["previous"] == base
    stacks = stacks_of(report)
    assert stacks["prod-chat"]["deploy"] == "updated" and stacks["prod-embed"]["deploy"] == "created"
    assert max_capacity(deployed_template("prod-chat")) == 3
    live = live_stacks("prod")
    for name in ("prod-chat", "prod-embed"):
        assert parameters_of(live[name]) == {"GatewayImageTag": second}  # the gateway fix reached both
        assert cf.tags_of(live[name])[COMMIT_TAG] == second
    assert_at_record("prod", commit=second)

    # The earlier run is approved afterwards: its commit is older than prod's release, so it changes nothing.
    checkout.checkout(first)
    code, report, _ = checkout.release("prod", "--commit", first)
    assert code == 0, report["steps"]
    assert report["outcome"] == "superseded"
    assert [s["deploy"] for s in report["stacks"] if s["deploy"]] == []
    assert max_capacity(deployed_template("prod-chat")) == 3
    assert_at_record("prod", commit=second)


def test_a_failed_smoke_deletes_the_new_stack_and_restores_the_changed_one_exactly(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    checkout.spec("prod", "chat")
    checkout.spec("prod", "steady", model="gpt-4o-mini")
    good = checkout.commit("prod as it runs")
    assert checkout.release("prod")[0] == 0
    before = latest_record("prod")
    steady = live_stacks("prod")["prod-steady"]

    checkout.spec("prod", "chat", max=4)
    checkout.spec("prod", "new", model="o3-mini")
    checkout.write("inference_server/app.py", "# the gateway, rewritten\n")
    bad = checkout.commit("a new stack, a changed one, a new gateway")
    fake_smoke.failing = {"prod-chat"}
    code, report, _ = checkout.release("prod", "--commit", bad)

    assert code == 1
    assert report["outcome"] == "rolled-back"
    steps = {s["name"]: s["outcome"] for s in report["steps"]}
    assert steps == {"checkout": "ok", "load": "ok", "previous": "ok", "quotas": "ok", "deploy": "ok",
                     "smoke": "failed", "rollback": "ok"}  # fmt: skip
    stacks = stacks_of(report)
    assert (stacks["prod-chat"]["deploy"], stacks["prod-chat"]["rollback"]) == ("updated", "updated")
    assert (stacks["prod-new"]["deploy"], stacks["prod-new"]["rollback"]) == ("created", "deleted")
    assert (stacks["prod-steady"]["deploy"], stacks["prod-steady"]["rollback"]) == ("updated", "updated")
    assert stacks["prod-chat"]["smoke"]["ok"] is False

    live = live_stacks("prod")
    assert "prod-new" not in live  # created with termination protection (prod), and deleted all the same
    # The changed stack runs the previous release's template bytes and images, not a re-render.
    assert deployed_template("prod-chat") == json.loads(before.stacks["prod-chat"].template)
    assert max_capacity(deployed_template("prod-chat")) == 2
    assert parameters_of(live["prod-chat"]) == {"GatewayImageTag": good}
    assert cf.tags_of(live["prod-chat"])[COMMIT_TAG] == good
    assert parameters_of(live["prod-steady"]) == parameters_of(steady)
    record = assert_at_record("prod", commit=good)
    assert record.key == before.key  # a failed release records nothing

    # The next good release goes forward from there.
    fake_smoke.failing = set()
    checkout.spec("prod", "chat", max=3)
    fixed = checkout.commit("chat scales to 3")
    code, report, _ = checkout.release("prod", "--commit", fixed)
    assert code == 0, report["steps"]
    assert_at_record("prod", commit=fixed)


def test_a_failed_first_release_deletes_what_it_created(checkout: Checkout, fake_smoke: Smoke) -> None:
    checkout.spec("staging", "chat")
    checkout.spec("staging", "other", model="gpt-4o-mini")
    checkout.commit("first")
    fake_smoke.failing = {"staging-other"}
    code, report, _ = checkout.release("staging")
    assert code == 1
    assert report["outcome"] == "rolled-back"
    assert {s["stack_name"]: s["rollback"] for s in report["stacks"]} == {
        "staging-chat": "deleted", "staging-other": "deleted"
    }  # fmt: skip
    assert "no previous release" in report["steps"][-1]["detail"]
    assert live_stacks("staging") == {}


def test_a_rerun_of_an_old_run_is_superseded_and_changes_nothing(checkout: Checkout) -> None:
    checkout.spec("staging", "chat")
    old = checkout.commit("old")
    assert checkout.release("staging")[0] == 0
    checkout.spec("staging", "chat", max=5)
    new = checkout.commit("new")
    assert checkout.release("staging")[0] == 0
    events = len(
        boto3.client("cloudformation", region_name=REGION).describe_stack_events(StackName="staging-chat")[
            "StackEvents"
        ]
    )

    checkout.checkout(old)  # what re-running the old workflow run checks out
    code, report, _ = checkout.release("staging", "--commit", old)
    assert code == 0
    assert report["outcome"] == "superseded"
    assert report["previous"] == new
    assert report["steps"][-1]["name"] == "previous"
    assert "does not descend" in report["steps"][-1]["detail"]
    cfn = boto3.client("cloudformation", region_name=REGION)
    assert (
        len(cfn.describe_stack_events(StackName="staging-chat")["StackEvents"]) == events
    )  # no change set ran
    assert cf.tags_of(live_stacks("staging")["staging-chat"])[COMMIT_TAG] == new
    assert max_capacity(deployed_template("staging-chat")) == 5

    # A branch that never saw the release is no descendant either.
    git(checkout.root, "checkout", "-q", "-b", "side", old)
    checkout.spec("staging", "chat", max=7)
    side = checkout.commit("side")
    code, report, _ = checkout.release("staging", "--commit", side)
    assert (code, report["outcome"]) == (0, "superseded")
    assert_at_record("staging", commit=new)


def test_an_internal_endpoint_is_smoke_tested_through_check_deployment(
    checkout: Checkout, fake_smoke: Smoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout.spec("staging", "private-chat")
    checkout.commit("an internal endpoint")
    code, report, _ = checkout.release("staging")
    assert code == 0, report["steps"]
    ((deployment, kwargs),) = fake_smoke.calls
    assert deployment.stack_name == "staging-private-chat"
    assert deployment.spec.network.public is False  # an internal load balancer, only reached in its VPC
    assert kwargs["key_mode"] == "secret"  # the stack's own key, read by the smoke role
    assert stacks_of(report)["staging-private-chat"]["smoke"]["ok"] is True

    # check_deployment decides how to reach it; when it cannot, the release is not proven: rolled back.
    def unreachable(deployment: Any, **kwargs: Any) -> smoke.Report:
        raise smoke.NotSmokeable(f"{deployment.stack_name}: no SmokeProbeFunction output")

    monkeypatch.setattr(smoke, "check_deployment", unreachable)
    checkout.spec("staging", "private-chat", max=3)
    checkout.commit("scale further")
    code, report, _ = checkout.release("staging")
    assert (code, report["outcome"]) == (1, "rolled-back")
    assert "no SmokeProbeFunction output" in stacks_of(report)["staging-private-chat"]["smoke"]["error"]
    assert max_capacity(deployed_template("staging-private-chat")) == 2
    assert_at_record("staging")


def test_a_failed_deploy_restores_the_stacks_that_did_change(checkout: Checkout) -> None:
    checkout.spec("staging", "chat")
    good = checkout.commit("staging as it runs")
    assert checkout.release("staging")[0] == 0
    before = latest_record("staging")

    checkout.spec("staging", "chat", max=4)
    far = checkout.spec("staging", "far", model="o3-mini")
    far.write_text(far.read_text().replace("region: us-east-1", "region: eu-west-1"), encoding="utf-8")
    checkout.commit("chat scales further; a stack in a region staging may not use")
    code, report, _ = checkout.release("staging")
    assert (code, report["outcome"]) == (1, "rolled-back")
    stacks = stacks_of(report)
    assert stacks["staging-far"]["deploy"] == "failed"
    assert "is not one of staging's regions" in stacks["staging-far"]["reasons"][0]
    assert (stacks["staging-chat"]["deploy"], stacks["staging-chat"]["rollback"]) == ("updated", "updated")
    assert "smoke" not in {
        s["name"] for s in report["steps"]
    }  # nothing is smoke-tested after a failed deploy
    assert deployed_template("staging-chat") == json.loads(before.stacks["staging-chat"].template)
    assert_at_record("staging", commit=good)


def test_a_removed_deployment_is_pruned_once_the_rest_is_proven(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    checkout.spec("prod", "chat")
    old = checkout.spec("prod", "old", model="gpt-4o-mini")
    checkout.commit("two endpoints")
    assert checkout.release("prod")[0] == 0
    old.unlink()
    checkout.spec("prod", "chat", max=3)
    checkout.commit("one goes, one changes")

    # The change fails its smoke test: the removed stack is still serving, untouched.
    fake_smoke.failing = {"prod-chat"}
    code, report, _ = checkout.release("prod")
    assert (code, report["outcome"]) == (1, "rolled-back")
    assert "prune" not in {s["name"] for s in report["steps"]}
    assert "prod-old" not in stacks_of(report)  # not touched, by the release nor by its rollback
    assert set(live_stacks("prod")) == {"prod-chat", "prod-old"}
    assert_at_record("prod")

    fake_smoke.failing = set()
    code, report, _ = checkout.release("prod")
    assert code == 0, report["steps"]
    assert stacks_of(report)["prod-old"]["deploy"] == "deleted"  # prod: termination protection lifted
    record = assert_at_record("prod")
    assert set(record.stacks) == {"prod-chat"}


def test_no_rollback_leaves_the_failure_in_place_and_records_nothing(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    checkout.spec("staging", "chat")
    good = checkout.commit("good")
    assert checkout.release("staging")[0] == 0
    checkout.spec("staging", "chat", max=6)
    checkout.commit("bad")
    fake_smoke.failing = {"staging-chat"}
    code, report, _ = checkout.release("staging", "--no-rollback")
    assert (code, report["outcome"]) == (1, "failed")
    last = report["steps"][-1]
    assert (last["name"], last["outcome"]) == ("rollback", "skipped")
    assert last["detail"] == "--no-rollback: the environment is left as the failure left it"
    assert max_capacity(deployed_template("staging-chat")) == 6
    assert latest_record("staging").commit == good


def test_a_rollback_that_cannot_restore_says_so(checkout: Checkout, fake_smoke: Smoke) -> None:
    checkout.spec("staging", "chat")
    good = checkout.commit("good")
    assert checkout.release("staging")[0] == 0
    # The image the record names has gone (an ECR lifecycle rule expired it, say).
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.batch_delete_image(repositoryName="deployctl/gateway", imageIds=[{"imageTag": good}])
    checkout.write("inference_server/app.py", "# a new gateway\n")
    checkout.commit("a new gateway")
    fake_smoke.failing = {"staging-chat"}
    code, report, _ = checkout.release("staging")
    assert (code, report["outcome"]) == (1, "rollback-failed")
    assert report["steps"][-1] == {**report["steps"][-1], "name": "rollback", "outcome": "failed"}
    assert "could not restore staging-chat" in report["steps"][-1]["detail"]
    chat = stacks_of(report)["staging-chat"]
    assert chat["rollback"] == "failed" and good in " ".join(chat["rollback_reasons"])
    assert latest_record("staging").commit == good  # nothing recorded


def test_a_failed_move_to_another_region_deletes_the_new_stack_and_keeps_the_old(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    from tests.release.conftest import ENVIRONMENTS, MANIFEST, SPEC

    far = "eu-west-1"
    checkout.write("deployments/environments.yaml", ENVIRONMENTS.replace(
        "staging: {account_id: \"123456789012\", regions: [us-east-1]}",
        f"staging: {{account_id: \"123456789012\", regions: [us-east-1, {far}]}}"))  # fmt: skip
    checkout.spec("staging", "chat")
    good = checkout.commit("chat in us-east-1")
    assert checkout.release("staging")[0] == 0
    ec2 = boto3.client("ec2", region_name=far)
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    checkout.write("deployments/staging/chat.yaml", SPEC.format(
        name="chat", region=far, model="gpt-4o", max=2, vpc=vpc, subnets=", ".join(subnets)))  # fmt: skip
    checkout.commit("chat moves to eu-west-1")
    ecr = boto3.client("ecr", region_name=far)  # what ECR replication leaves in the new region
    ecr.create_repository(repositoryName="deployctl/gateway")
    ecr.put_image(repositoryName="deployctl/gateway", imageManifest=MANIFEST, imageTag=good)

    fake_smoke.failing = {"staging-chat"}
    code, report, _ = checkout.release("staging")
    assert (code, report["outcome"]) == (1, "rolled-back")
    far_stacks = boto3.client("cloudformation", region_name=far).describe_stacks()["Stacks"]
    assert [s["StackName"] for s in far_stacks if s["StackStatus"] != "DELETE_COMPLETE"] == []
    assert_at_record("staging", commit=good)  # the us-east-1 stack, as it was
