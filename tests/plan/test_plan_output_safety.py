"""Issue 14 #10 (the PR comment escapes what it prints and cuts cleanly) and the offline plan's
region moves and hashes (#2, #3)."""

from __future__ import annotations

import json
import re

from tooling.diff import PropertyChange, ResourceChange
from tooling.plan import Plan, StackPlan, offline
from tooling.plan_output import VALUE_WIDTH, markdown, show_change
from tooling.snapshot import Snapshot, StackState

HOSTILE = "`</code></details><img src=x onerror=alert(1)> @octocat [x](javascript:1) ```"


def test_every_value_is_escaped() -> None:
    stack = StackPlan(
        "dev",
        "demo",
        "dev-demo",
        "invalid",
        errors=[f"deployments/dev/demo.yaml:3:7: error: {HOSTILE}"],
        warnings=[HOSTILE],
    )
    changed = StackPlan(
        "dev",
        "other",
        "dev-other",
        "update",
        changes=[
            ResourceChange(
                "Topic",
                "AWS::SNS::Topic",
                "modify",
                "false",
                [PropertyChange("Properties.DisplayName", "a", HOSTILE)],
            )
        ],
    )
    text = markdown(Plan(f"git:{HOSTILE}", [stack, changed], problems=[HOSTILE]))
    outside_fences = re.sub(r"(`{3,})diff\n.*?\n\1\n", "", text, flags=re.S)
    for live in ("</details><img", "<img", "@octocat", "](javascript", "</code></details>"):
        assert live not in outside_fences, live
    # Tags the comment itself writes stay balanced.
    assert outside_fences.count("<details") == outside_fences.count("</details>") == 2
    assert outside_fences.count("<code>") == outside_fences.count("</code>")
    # Inside the diff fence, a value with ``` cannot close it: the fence is longer than any run.
    (fence,) = re.findall(r"^(`{3,})diff$", text, flags=re.M)
    assert len(fence) > 3 and text.count(f"\n{fence}\n") == 1


def test_a_cut_comment_keeps_every_environment_and_closes_its_fences() -> None:
    big = [PropertyChange(f"Properties.P{i}", "x" * 100, "y" * 100) for i in range(40)]
    stacks = [
        StackPlan(
            env,
            f"svc-{i}",
            f"{env}-svc-{i}",
            "update",
            changes=[ResourceChange("R", "AWS::SNS::Topic", "modify", "false", big)],
        )
        for env in ("dev", "staging", "prod", "qa")
        for i in range(10)
    ]
    text = markdown(Plan("git:x", stacks), limit=20_000)
    assert len(text.encode()) <= 20_000
    for env in ("dev", "staging", "prod", "qa"):
        assert f"- <code>{env}</code>: 10 update" in text
    assert len(re.findall(r"^`{3,}", text, flags=re.M)) % 2 == 0  # every fence opened is closed
    assert text.count("<details") == text.count("</details>")
    assert text.rstrip().endswith("run `make plan`._")


def state(region: str, text: str = '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}') -> StackState:
    return StackState("dev", "demo", "deployments/dev/demo.yaml", region, text)


def test_a_region_change_is_a_create_there_and_a_delete_here() -> None:
    base = Snapshot({"dev-demo": state("us-east-1")})
    head = Snapshot({"dev-demo": state("eu-west-1")})
    plan = offline(head, base, "git:x", repository="acme/models")
    assert sorted((s.action, s.region) for s in plan.stacks) == [
        ("create", "eu-west-1"),
        ("delete", "us-east-1"),
    ]


def test_the_plan_json_hashes_each_stack_and_the_whole() -> None:
    head = Snapshot({"dev-demo": state("us-east-1")})
    data = offline(head, Snapshot({}), "none", repository="acme/models").to_json()
    (stack,) = data["stacks"]
    assert set(stack["hash"]) == {"stack", "template", "parameters", "tags", "image_tags"}
    assert stack["hash"]["image_tags"] is None and stack["file"] == "deployments/dev/demo.yaml"
    other = offline(Snapshot({"dev-demo": state("us-east-1")}), Snapshot({}), "none", repository="else/where")
    assert other.to_json()["stacks"][0]["hash"]["tags"] != stack["hash"]["tags"]
    assert other.to_json()["hash"] != data["hash"]
    changed = state("us-east-1", json.dumps({"Resources": {"U": {"Type": "AWS::SNS::Topic"}}}))
    again = offline(Snapshot({"dev-demo": changed}), Snapshot({}), "none", repository="acme/models").to_json()
    assert again["stacks"][0]["hash"]["template"] != stack["hash"]["template"]


def test_a_long_value_is_shown_from_where_it_changes() -> None:
    body = '{"widgets":[' + '{"type":"text","properties":{"markdown":"header"}},' * 10
    before, after = show_change(
        {"Fn::Sub": [body + '"**$39.41 a day**"]}', {}]}, {"Fn::Sub": [body + '"**$52.10 a day**"]}', {}]}
    )
    assert before != after
    assert "$39.41" in before and "$52.10" in after
    assert before.startswith("…") and len(before) <= VALUE_WIDTH
    # Short values, and a created or removed one, are shown as they are.
    assert show_change("a", "b") == ("a", "b")
    assert show_change(None, "x" * 300)[0] == "(none)"
    # A credential in a long value is never shown, whichever part of it the window would show.
    secret = body + "AKIA" + "A" * 16 + '"]'
    assert "AKIA" not in "".join(show_change(secret, secret + "x"))
