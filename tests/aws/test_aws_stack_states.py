"""Stack states moto cannot produce, against botocore's Stubber with the responses AWS documents.

moto has no ROLLBACK_COMPLETE after a failed creation, no UPDATE_ROLLBACK_FAILED or
ContinueUpdateRollback, no empty change sets reported as FAILED, and no Replacement details in change
sets; these tests give the engine exactly what the CloudFormation API reference says AWS returns.
"""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from tooling import changesets, deploy
from tooling import cloudformation as cf
from tooling.snapshot import StackState

NAME = "dev-demo"
NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{NAME}/1"


@pytest.fixture
def cfn(monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr(cf, "POLL_SECONDS", 0.0)
    monkeypatch.setattr("tooling.aws.client", lambda service, region: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def state() -> StackState:
    return StackState("dev", "demo", "deployments/dev/demo.yaml", "us-east-1", TEMPLATE)


def stack(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "Stacks": [
            {"StackName": NAME, "StackId": STACK_ID, "StackStatus": status, "CreationTime": NOW, **extra}
        ]
    }


def missing(stubber: Stubber, name: str = NAME) -> None:
    stubber.add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {name} does not exist", 400, {"StackName": name}
    )


def events(stubber: Stubber, *items: tuple[str, str, str]) -> None:
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {"StackId": STACK_ID, "EventId": f"e{i}", "StackName": NAME, "Timestamp": NOW,
                 "LogicalResourceId": logical, "ResourceType": "AWS::SNS::Topic", "ResourceStatus": status,
                 "ResourceStatusReason": reason}
                for i, (logical, status, reason) in reversed(list(enumerate(items)))
            ]
        },
        {"StackName": NAME},
    )  # fmt: skip


def change_set(
    stubber: Stubber,
    kind: str,
    *,
    parameters: list | None = None,
    status: str = "CREATE_COMPLETE",
    changes: list | None = None,
    reason: str | None = None,
) -> None:
    """CreateChangeSet, then DescribeChangeSet answering `status` (and `reason`) with `changes`."""
    stubber.add_response(
        "create_change_set",
        {"Id": "cs-1", "StackId": STACK_ID},
        {
            "StackName": NAME,
            "ChangeSetName": ANY,
            "ChangeSetType": kind,
            "Parameters": parameters or [],
            "Capabilities": cf.CAPABILITIES,
            "Tags": ANY,
            "TemplateBody": ANY,
        },
    )
    described = {"Status": status, "StackName": NAME, "Changes": changes or []}
    if reason:
        described["StatusReason"] = reason
    expected = {"StackName": NAME, "ChangeSetName": ANY, "IncludePropertyValues": True}
    stubber.add_response("describe_change_set", described, expected)


def create_and_execute(stubber: Stubber, kind: str, final: str = "CREATE_COMPLETE") -> None:
    missing(stubber, "deployctl-bootstrap")  # no bootstrap stack: CloudFormation acts as the caller
    change_set(stubber, kind)
    stubber.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    stubber.add_response("describe_stacks", stack(final), {"StackName": NAME})
    events(stubber, ("Topic", "CREATE_COMPLETE", ""))


def run(stubber: Stubber) -> deploy.Result:
    return deploy._guarded(state(), deploy.Options(timeout=60), threading.Event())


def test_rollback_complete_is_deleted_then_created_again(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": NAME})
    cfn.add_response("update_termination_protection", {"StackId": STACK_ID},
                     {"StackName": NAME, "EnableTerminationProtection": False})  # fmt: skip
    cfn.add_response("delete_stack", {}, {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"), {"StackName": NAME})
    missing(cfn)
    create_and_execute(cfn, "CREATE")
    result = run(cfn)
    assert (result.outcome, result.reasons) == ("created", [])


def test_review_in_progress_shell_is_replaced(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("REVIEW_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("update_termination_protection", {"StackId": STACK_ID},
                     {"StackName": NAME, "EnableTerminationProtection": False})  # fmt: skip
    cfn.add_response("delete_stack", {}, {"StackName": NAME})
    missing(cfn)
    create_and_execute(cfn, "CREATE")
    assert run(cfn).outcome == "created"


def test_update_rollback_failed_is_continued_then_reported(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("UPDATE_ROLLBACK_FAILED"), {"StackName": NAME})
    cfn.add_response("continue_update_rollback", {}, {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "UPDATE_FAILED", "Resource handler returned message: quota exceeded"))
    result = run(cfn)
    assert result.outcome == "failed"
    assert "UPDATE_ROLLBACK_COMPLETE" in result.reasons[0]
    assert "quota exceeded" in result.reasons[1]


def test_in_progress_is_waited_for(cfn: Stubber) -> None:
    tags = {"Tags": [{"Key": cf.HASH_TAG, "Value": cf.template_hash(TEMPLATE, {})}]}
    cfn.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE", **tags), {"StackName": NAME})
    assert run(cfn).outcome == "unchanged"  # then the hash tag says nothing changed: no change set


def test_a_failed_creation_reports_the_failed_resources(cfn: Stubber) -> None:
    missing(cfn)
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "CREATE")
    cfn.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "CREATE_FAILED", "Topic name is taken"), ("Topic", "DELETE_COMPLETE", ""))
    result = run(cfn)
    assert result.outcome == "failed"
    assert result.reasons == ["Topic (AWS::SNS::Topic) CREATE_FAILED: Topic name is taken"]


def test_an_empty_change_set_is_no_change_and_is_deleted(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": NAME})
    missing(cfn, "deployctl-bootstrap")
    change_set(
        cfn,
        "UPDATE",
        status="FAILED",
        # The reason AWS gives for a change set without changes (CloudFormation API reference).
        reason="The submitted information didn't contain changes. "
        "Submit different information to create a change set.",
    )
    cfn.add_response("delete_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    assert run(cfn).outcome == "no-change"


def test_change_set_replacement_details_become_plan_changes() -> None:
    documented = {
        "Type": "Resource",
        "ResourceChange": {
            "Action": "Modify",
            "LogicalResourceId": "TaskDefinition",
            "PhysicalResourceId": "arn:aws:ecs:us-east-1:123456789012:task-definition/x:3",
            "ResourceType": "AWS::ECS::TaskDefinition",
            "Replacement": "True",
            "Scope": ["Properties"],
            "Details": [
                {
                    "Target": {
                        "Attribute": "Properties",
                        "Name": "Memory",
                        "RequiresRecreation": "Always",
                        "Path": "/Properties/Memory",
                        "BeforeValue": "14592",
                        "AfterValue": "29440",
                        "AttributeChangeType": "Modify",
                    },
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                }
            ],
        },
    }
    change = changesets.translate(documented)
    assert (change.action, change.replacement, change.resource_type) == (
        "modify",
        "true",
        "AWS::ECS::TaskDefinition",
    )
    assert [(p.path, p.before, p.after) for p in change.properties] == [("/Properties/Memory", 14592, 29440)]
    conditional = {
        **documented,
        "ResourceChange": {**documented["ResourceChange"], "Replacement": "Conditional"},
    }
    assert changesets.translate(conditional).replacement == "conditional"


def test_the_plan_deletes_its_change_set_and_the_shell_of_a_new_stack(cfn: Stubber) -> None:
    missing(cfn)
    change_set(
        cfn,
        "CREATE",
        changes=[
            {
                "Type": "Resource",
                "ResourceChange": {
                    "Action": "Add",
                    "LogicalResourceId": "Topic",
                    "ResourceType": "AWS::SNS::Topic",
                },
            }
        ],
    )
    cfn.add_response("delete_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("REVIEW_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("delete_stack", {}, {"StackName": NAME})
    result = changesets._plan_stack(state(), image_tag=None)
    assert result.action == "create"
    assert [c.logical_id for c in result.changes] == ["Topic"]


def test_a_missing_image_tag_is_reported_not_raised() -> None:
    text = json.dumps({"Parameters": {"GatewayImageTag": {"Type": "String"}}, "Resources": {}})
    s = StackState("dev", "demo", "f", "us-east-1", text)
    with pytest.raises(changesets.MissingParameter, match="pass --image-tag"):
        changesets.parameters(s, None, None)
    tags = changesets.image_tags(["abc"])
    assert changesets.parameters(s, None, tags) == [
        {"ParameterKey": "GatewayImageTag", "ParameterValue": "abc"}
    ]
    assert changesets.image_tags(["gateway=g1", "vllm=v1"]) == {"GatewayImageTag": "g1", "VllmImageTag": "v1"}
    with pytest.raises(ValueError, match="use TAG"):
        changesets.image_tags(["engine=x"])
    deployed = {"Parameters": [{"ParameterKey": "GatewayImageTag", "ParameterValue": "old"}]}
    assert changesets.parameters(s, deployed, None) == [
        {"ParameterKey": "GatewayImageTag", "UsePreviousValue": True}
    ]


def test_client_errors_other_than_missing_stacks_are_raised(cfn: Stubber) -> None:
    cfn.add_client_error("describe_stacks", "Throttling", "Rate exceeded", 400, {"StackName": NAME})
    with pytest.raises(ClientError):
        cf.describe(boto3_client(), NAME)


def boto3_client() -> Any:
    from tooling import aws

    return aws.client("cloudformation", "us-east-1")


def test_a_cancelled_deploy_deletes_the_change_set_it_did_not_execute(cfn: Stubber) -> None:
    missing(cfn)
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "CREATE")
    cfn.add_response("delete_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("REVIEW_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("delete_stack", {}, {"StackName": NAME})
    cancel = threading.Event()
    cancel.set()  # Ctrl-C arrived while the change set was being made
    result = deploy._guarded(state(), deploy.Options(timeout=60), cancel)
    assert result.outcome == "interrupted"


def test_templates_over_the_inline_limit_go_through_the_artifacts_bucket(aws_env: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=cf.artifacts_bucket("123456789012", "us-east-1"))
    big = json.dumps({"Description": "x" * 60_000, "Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    argument = cf.template_argument(big, NAME, "us-east-1")
    (url,) = argument.values()
    assert list(argument) == ["TemplateURL"]
    key = url.split(".amazonaws.com/", 1)[1]
    body = s3.get_object(Bucket=cf.artifacts_bucket("123456789012", "us-east-1"), Key=key)["Body"].read()
    assert json.loads(body) == json.loads(big)
    assert list(cf.template_argument(TEMPLATE, NAME, "us-east-1")) == ["TemplateBody"]


def test_a_rollback_redeploys_the_recorded_tag_of_each_stack(
    cfn: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recorded tags are in the stack's registry (the ECR check itself: tests/accounts).
    monkeypatch.setattr("tooling.accounts.images.missing", lambda region, images: [])
    text = json.dumps({"Parameters": {"VllmImageTag": {"Type": "String"}}, "Resources": {}})
    deployed = stack("UPDATE_COMPLETE", Parameters=[{"ParameterKey": "VllmImageTag", "ParameterValue": "v2"}])
    cfn.add_response("describe_stacks", deployed, {"StackName": NAME})
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "UPDATE", parameters=[{"ParameterKey": "VllmImageTag", "ParameterValue": "v1"}])
    cfn.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "UPDATE_COMPLETE", ""))
    options = deploy.Options(
        timeout=60, image_tags={"VllmImageTag": "v3"}, stack_image_tags={NAME: {"VllmImageTag": "v1"}}
    )
    result = deploy._guarded(StackState("dev", "demo", "f", "us-east-1", text), options, threading.Event())
    assert result.outcome == "updated"


def test_a_plan_of_a_new_stack_needs_no_image_tag(cfn: Stubber) -> None:
    text = json.dumps({"Parameters": {"GatewayImageTag": {"Type": "String"}}, "Resources": {}})
    missing(cfn)
    change_set(
        cfn, "CREATE", parameters=[{"ParameterKey": "GatewayImageTag", "ParameterValue": "not-yet-built"}]
    )
    cfn.add_response("delete_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    missing(cfn)
    result = changesets._plan_stack(StackState("dev", "demo", "f", "us-east-1", text), image_tag=None)
    assert result.action == "create"


EMAIL_TEMPLATE = json.dumps(
    {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic"},
            "AlarmEmailSubscription": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": "t"},
            },
        }
    }
)


def _deploy_with_events(text: str) -> tuple[deploy.Result, list[str]]:
    lines: list[str] = []
    options = deploy.Options(timeout=60, on_event=lambda stack, line: lines.append(line))
    state = StackState("dev", "demo", "deployments/dev/demo.yaml", "us-east-1", text)
    return deploy._guarded(state, options, threading.Event()), lines


def test_a_new_stack_says_its_alarm_email_waits_for_confirmation(cfn: Stubber) -> None:
    missing(cfn)
    create_and_execute(cfn, "CREATE")
    result, lines = _deploy_with_events(EMAIL_TEMPLATE)
    assert result.outcome == "created"
    (note,) = [line for line in lines if "oncall@example.com" in line]
    assert "pending" in note and "confirmation link" in note


def test_an_update_that_adds_no_subscription_says_nothing_of_it(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("CREATE_COMPLETE", Tags=[]), {"StackName": NAME})
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "UPDATE", changes=[{"Type": "Resource", "ResourceChange": {
        "Action": "Modify", "LogicalResourceId": "Topic", "ResourceType": "AWS::SNS::Topic"}}])  # fmt: skip
    cfn.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "UPDATE_COMPLETE", ""))
    result, lines = _deploy_with_events(EMAIL_TEMPLATE)
    assert result.outcome == "updated"
    assert not [line for line in lines if "confirmation link" in line]
