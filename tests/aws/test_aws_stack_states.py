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
from tooling.ownership import ownership_tags
from tooling.snapshot import Snapshot, StackState

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


def events(stubber: Stubber, *items: tuple[str, str, str], name: str = NAME) -> None:
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
        {"StackName": name},
    )  # fmt: skip


def marked(stubber: Stubber, *old: tuple[str, str, str]) -> None:
    """DescribeStackEvents just before a change set executes: the newest event existing then is where
    this deploy's events start (events come newest first, CloudFormation API reference)."""
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {"StackId": STACK_ID, "EventId": f"old{i}", "StackName": NAME, "Timestamp": NOW,
                 "LogicalResourceId": logical, "ResourceType": "AWS::SNS::Topic", "ResourceStatus": status,
                 "ResourceStatusReason": reason}
                for i, (logical, status, reason) in reversed(list(enumerate(old)))
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
    marked(stubber)
    stubber.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    stubber.add_response("describe_stacks", stack(final), {"StackName": NAME})
    events(stubber, ("Topic", "CREATE_COMPLETE", ""))


def run(stubber: Stubber) -> deploy.Result:
    return deploy._guarded(state(), deploy.Options(timeout=60), threading.Event())


def test_rollback_complete_is_deleted_then_created_again(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": NAME})
    cfn.add_response("validate_template", {"Parameters": []}, {"TemplateBody": ANY})
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


def continued(stubber: Stubber, final: str, **extra: Any) -> None:
    """A stack in UPDATE_ROLLBACK_FAILED, ContinueUpdateRollback, and the state the rollback ends in."""
    stubber.add_response("describe_stacks", stack("UPDATE_ROLLBACK_FAILED"), {"StackName": NAME})
    marked(stubber)
    stubber.add_response("continue_update_rollback", {}, {"StackName": NAME})
    stubber.add_response("describe_stacks", stack(final, **extra), {"StackName": NAME})
    events(stubber, ("Topic", "UPDATE_FAILED", "Resource handler returned message: quota exceeded"))


def test_update_rollback_failed_that_fails_again_is_reported(cfn: Stubber) -> None:
    continued(cfn, "UPDATE_ROLLBACK_FAILED")
    result = run(cfn)
    assert result.outcome == "failed"
    assert "ContinueUpdateRollback brought it to UPDATE_ROLLBACK_FAILED" in result.reasons[0]
    assert "--resources-to-skip" in result.reasons[0]
    assert "quota exceeded" in result.reasons[1]


def test_update_rollback_failed_continued_to_complete_is_then_deployed(cfn: Stubber) -> None:
    # "By continuing the rollback, you can return your stack to a working state (the
    # UPDATE_ROLLBACK_COMPLETE state), and then try to update the stack again" (ContinueUpdateRollback,
    # CloudFormation API reference): the deploy goes on, and the rollback's failures are not its own.
    continued(cfn, "UPDATE_ROLLBACK_COMPLETE")
    create_and_execute(cfn, "UPDATE", final="UPDATE_COMPLETE")
    result = run(cfn)
    assert (result.outcome, result.reasons) == ("updated", [])


def test_update_rollback_failed_continued_back_to_what_is_wanted_is_unchanged(cfn: Stubber) -> None:
    # A release's rollback: the stack whose update could not roll back, continued, runs the record's
    # template again (its hash tag rolled back with it): nothing more to do, and nothing failed.
    digest = cf.template_hash(TEMPLATE, {}, ownership_tags(state(), ""))
    continued(cfn, "UPDATE_ROLLBACK_COMPLETE", Tags=[{"Key": cf.HASH_TAG, "Value": digest}])
    assert run(cfn).outcome == "unchanged"


def test_in_progress_is_waited_for(cfn: Stubber) -> None:
    digest = cf.template_hash(TEMPLATE, {}, ownership_tags(state(), ""))
    tags = {"Tags": [{"Key": cf.HASH_TAG, "Value": digest}]}
    cfn.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": NAME})
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE", **tags), {"StackName": NAME})
    assert run(cfn).outcome == "unchanged"  # then the hash tag says nothing changed: no change set


def test_a_failed_creation_reports_the_failed_resources(cfn: Stubber) -> None:
    missing(cfn)
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "CREATE")
    marked(cfn)
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
    argument = cf.template_argument(big, NAME, "us-east-1", purpose="deploy")
    (url,) = argument.values()
    assert list(argument) == ["TemplateURL"]
    key = url.split(".amazonaws.com/", 1)[1]
    body = s3.get_object(Bucket=cf.artifacts_bucket("123456789012", "us-east-1"), Key=key)["Body"].read()
    assert json.loads(body) == json.loads(big)
    assert key.startswith(f"templates/deploy/{NAME}/")
    # A plan (pull requests' code) uploads the same template under its own prefix, never a deploy's key.
    (plan_url,) = cf.template_argument(big, NAME, "us-east-1", purpose="plan").values()
    assert plan_url.split(".amazonaws.com/", 1)[1] == key.replace("templates/deploy/", "templates/plan/", 1)
    assert list(cf.template_argument(TEMPLATE, NAME, "us-east-1", purpose="plan")) == ["TemplateBody"]


def test_a_template_url_names_the_s3_domain_of_the_stacks_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    # S3 in the China regions answers under amazonaws.com.cn
    # (https://docs.amazonaws.cn/en_us/general/latest/gr/endpoints-Beijing.html); a TemplateURL under
    # amazonaws.com names no bucket there and CreateChangeSet refuses it. Stubber: moto has no China.
    s3 = boto3.client("s3", region_name="cn-north-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr("tooling.aws.client", lambda service, region: s3)
    monkeypatch.setattr("tooling.aws.account_id", lambda region: "123456789012")
    big = json.dumps({"Description": "x" * 60_000, "Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    bucket = cf.artifacts_bucket("123456789012", "cn-north-1")
    with Stubber(s3) as stubber:
        stubber.add_response("put_object", {}, {"Bucket": bucket, "Key": ANY, "Body": ANY,
                                                "ContentType": "application/json"})  # fmt: skip
        (url,) = cf.template_argument(big, NAME, "cn-north-1", purpose="deploy").values()
        stubber.assert_no_pending_responses()
    assert url.startswith(f"https://{bucket}.s3.cn-north-1.amazonaws.com.cn/templates/deploy/{NAME}/")
    assert cf.template_url("b", "k", "us-gov-west-1") == "https://b.s3.us-gov-west-1.amazonaws.com/k"
    assert cf.template_url("b", "k", "eu-west-1") == "https://b.s3.eu-west-1.amazonaws.com/k"


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
    marked(cfn)
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
    marked(cfn)
    cfn.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "UPDATE_COMPLETE", ""))
    result, lines = _deploy_with_events(EMAIL_TEMPLATE)
    assert result.outcome == "updated"
    assert not [line for line in lines if "confirmation link" in line]


# Issue 14 #4: failed stacks by state, with prod's protections intact.


def prod_state() -> StackState:
    return StackState("prod", "demo", "deployments/prod/demo.yaml", "us-east-1", TEMPLATE)


def test_delete_failed_reports_what_blocked_it_and_deletes_nothing(cfn: Stubber) -> None:
    cfn.add_response(
        "describe_stacks",
        stack("DELETE_FAILED", StackStatusReason="The following resource(s) failed to delete: [Logs]"),
        {"StackName": NAME},
    )
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "Logs",
                    "ResourceType": "AWS::S3::Bucket",
                    "ResourceStatus": "DELETE_FAILED",
                    "ResourceStatusReason": "The bucket you tried to delete is not empty",
                    "LastUpdatedTimestamp": NOW,
                },
                {
                    "LogicalResourceId": "Topic",
                    "ResourceType": "AWS::SNS::Topic",
                    "ResourceStatus": "DELETE_COMPLETE",
                    "LastUpdatedTimestamp": NOW,
                },
            ]
        },
        {"StackName": NAME},
    )
    result = run(cfn)  # no delete_stack, no update_termination_protection is stubbed: none may be called
    assert result.outcome == "failed"
    (reason,) = result.reasons
    assert "Logs (AWS::S3::Bucket): The bucket you tried to delete is not empty" in reason
    assert "Topic" not in reason
    assert f"delete-stack --stack-name {NAME} --retain-resources Logs" in reason


def prod_stack(status: str) -> dict[str, Any]:
    return {"Stacks": [{**stack(status)["Stacks"][0], "StackName": "prod-demo"}]}


def test_a_failed_prod_stack_is_not_recreated_without_yes(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", prod_stack("ROLLBACK_COMPLETE"), {"StackName": "prod-demo"})
    events(cfn, ("Service", "CREATE_FAILED", "Resource handler returned message: capacity"), name="prod-demo")
    result = deploy._guarded(prod_state(), deploy.Options(timeout=60), threading.Event())
    assert result.outcome == "refused"
    assert "--yes" in result.reasons[0] and "capacity" in result.reasons[0]


def test_a_prod_recreate_checks_the_template_before_lifting_protection(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", prod_stack("ROLLBACK_COMPLETE"), {"StackName": "prod-demo"})
    cfn.add_client_error("validate_template", "ValidationError", "Template format error", 400)
    result = deploy._guarded(prod_state(), deploy.Options(timeout=60, yes=True), threading.Event())
    assert result.outcome == "failed"  # and neither UpdateTerminationProtection nor DeleteStack was called
    assert "Template format error" in result.reasons[0]


def test_the_plan_shows_a_recreate_with_its_reason(cfn: Stubber) -> None:
    cfn.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": NAME})
    events(cfn, ("Topic", "CREATE_FAILED", "Topic name is taken"), ("Topic", "DELETE_COMPLETE", ""))
    result = changesets._plan_stack(state(), image_tag=None)
    assert (result.action, result.errors) == ("create", [])
    assert result.recreate == "previous create failed (ROLLBACK_COMPLETE; Topic: Topic name is taken)"
    assert [c.logical_id for c in result.changes] == ["Topic"]


# Issue 14 #7: events only from this deploy.


def test_old_failures_are_not_reported_as_todays(cfn: Stubber) -> None:
    old = ("Topic", "UPDATE_FAILED", "last week's failure")
    cfn.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": NAME})
    missing(cfn, "deployctl-bootstrap")
    change_set(cfn, "UPDATE")
    marked(cfn, old)
    cfn.add_response("execute_change_set", {}, {"StackName": NAME, "ChangeSetName": ANY})
    cfn.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": NAME})
    # DescribeStackEvents now: today's events on top of the whole history (newest first).
    cfn.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {
                    "StackId": STACK_ID,
                    "EventId": "new1",
                    "StackName": NAME,
                    "Timestamp": NOW,
                    "LogicalResourceId": "Topic",
                    "ResourceType": "AWS::SNS::Topic",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "today's failure",
                },
                {
                    "StackId": STACK_ID,
                    "EventId": "old0",
                    "StackName": NAME,
                    "Timestamp": NOW,
                    "LogicalResourceId": "Topic",
                    "ResourceType": "AWS::SNS::Topic",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "last week's failure",
                },
            ]
        },
        {"StackName": NAME},
    )
    result = run(cfn)
    assert result.outcome == "failed"
    assert result.reasons == ["Topic (AWS::SNS::Topic) UPDATE_FAILED: today's failure"]


# Issue 14 #6: an AWS plan degrades per stack, and says what it could not clean up.


@pytest.fixture
def cfn_once(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client that makes each call once: the error stubbed is what botocore raises after its retries."""
    from botocore.config import Config

    client = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    monkeypatch.setattr(cf, "POLL_SECONDS", 0.0)
    monkeypatch.setattr("tooling.aws.client", lambda service, region: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_a_failing_stack_is_its_own_error_and_the_rest_are_planned(cfn_once: Stubber) -> None:
    cfn = cfn_once
    other = StackState("dev", "other", "deployments/dev/other.yaml", "us-east-1", TEMPLATE)
    # dev-demo: throttled past the retries, as botocore raises it at last.
    cfn.add_client_error("describe_stacks", "Throttling", "Rate exceeded", 400, {"StackName": NAME})
    # dev-other: a new stack; its change set is made, read, and its removal fails with an HTML 500.
    missing(cfn, "dev-other")
    cfn.add_response(
        "create_change_set",
        {"Id": "cs-2", "StackId": STACK_ID},
        {
            "StackName": "dev-other",
            "ChangeSetName": ANY,
            "ChangeSetType": "CREATE",
            "Parameters": [],
            "Capabilities": cf.CAPABILITIES,
            "Tags": ANY,
            "TemplateBody": ANY,
        },
    )
    cfn.add_response(
        "describe_change_set",
        {
            "Status": "CREATE_COMPLETE",
            "StackName": "dev-other",
            "Changes": [
                {
                    "Type": "Resource",
                    "ResourceChange": {
                        "Action": "Add",
                        "LogicalResourceId": "Topic",
                        "ResourceType": "AWS::SNS::Topic",
                    },
                }
            ],
        },
        {"StackName": "dev-other", "ChangeSetName": ANY, "IncludePropertyValues": True},
    )
    cfn.add_client_error("delete_change_set", "", "<html><body>500 Internal Server Error</body></html>", 500)
    cfn.add_response(
        "describe_stacks",
        {"Stacks": [{**stack("REVIEW_IN_PROGRESS")["Stacks"][0], "StackName": "dev-other"}]},
        {"StackName": "dev-other"},
    )
    cfn.add_response("delete_stack", {}, {"StackName": "dev-other"})
    head = Snapshot({NAME: state(), "dev-other": other})
    plan = changesets.plan(head, image_tag=None, max_parallel=1, repository="")
    by_name = {s.stack_name: s for s in plan.stacks}
    assert by_name[NAME].action == "invalid"
    assert by_name[NAME].errors == ["could not plan this stack: Throttling: Rate exceeded"]
    assert by_name["dev-other"].action == "create", by_name["dev-other"].errors
    assert [c.logical_id for c in by_name["dev-other"].changes] == ["Topic"]
    (left,) = by_name["dev-other"].errors
    assert left.startswith("change set deployctl-plan-") and "left behind" in left
    assert "delete-change-set --stack-name dev-other" in left
