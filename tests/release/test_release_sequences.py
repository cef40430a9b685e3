"""Release sequences against the AWS emulator: each ends with every stack of the environment at the
state the last successful release recorded."""

from __future__ import annotations

import json

import boto3
import pytest

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
from tooling.release import images

pytestmark = pytest.mark.slow


def test_a_new_deployment_merged_alone_deploys_with_the_tags_its_checkout_names(
    checkout: Checkout, fake_smoke: Smoke
) -> None:
    checkout.spec("staging", "chat")
    first = gateway = checkout.commit("the gateway and a first deployment")
    code, report, _ = checkout.release("staging", "--commit", first)
    assert code == 0, report["steps"]
    assert report["outcome"] == "released"
    assert [s["name"] for s in report["steps"]] == [
        "checkout",
        "load",
        "previous",
        "deploy",
        "smoke",
        "prune",
        "record",
    ]
    assert_at_record("staging", commit=first)

    # A deployment merged alone rebuilds no image: it runs the images the checkout names, the ones
    # built when the gateway last changed.
    checkout.spec("staging", "summarise", model="gpt-4o-mini")
    second = checkout.commit("a new deployment alone")
    code, report, _ = checkout.release("staging", "--commit", second)
    assert code == 0, report["steps"]
    stacks = {s["stack_name"]: s for s in report["stacks"]}
    assert stacks["staging-summarise"]["deploy"] == "created"
    assert stacks["staging-chat"]["deploy"] == "unchanged"  # the fast path: no change set
    live = live_stacks("staging")
    assert parameters_of(live["staging-summarise"]) == {"GatewayImageTag": gateway}
    assert images.image_commit(checkout.root, "gateway") == gateway != second
    # Only what changed is smoke-tested.
    assert [d.stack_name for d, _ in fake_smoke.calls] == ["staging-chat", "staging-summarise"]
    assert_at_record("staging", commit=second)
