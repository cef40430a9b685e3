"""The rollback's delete of a stack the failed release created, in states moto cannot produce.

botocore's Stubber answers with what the CloudFormation API reference documents: a stack whose delete
failed is DELETE_FAILED with its blocked resources DELETE_FAILED in ListStackResources; a create the
release stopped waiting for is still CREATE_IN_PROGRESS, and termination protection cannot change while
a delete runs (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html).
"""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tooling import cloudformation as cf
from tooling import deploy
from tooling.ownership import ownership_tags
from tooling.release import rollback
from tooling.snapshot import StackState

NAME = "prod-chat"
NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{NAME}/1"
REPOSITORY = "acme/models"
STATE = StackState("prod", "chat", "deployments/prod/chat.yaml", "us-east-1",
                   json.dumps({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}))  # fmt: skip


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


def stack(status: str, reason: str = "") -> dict[str, Any]:
    tags = [{"Key": k, "Value": v} for k, v in ownership_tags(STATE, REPOSITORY).items()]
    described = {"StackName": NAME, "StackId": STACK_ID, "StackStatus": status, "CreationTime": NOW,
                 "Tags": tags}  # fmt: skip
    if reason:
        described["StackStatusReason"] = reason
    return {"Stacks": [described]}


def described(stubber: Stubber, status: str, reason: str = "") -> None:
    stubber.add_response("describe_stacks", stack(status, reason), {"StackName": NAME})


def lift_and_delete(stubber: Stubber) -> None:
    stubber.add_response("update_termination_protection", {"StackId": STACK_ID},
                         {"StackName": NAME, "EnableTerminationProtection": False})  # fmt: skip
    stubber.add_response("delete_stack", {}, {"StackName": NAME})


def roll_back_first_release() -> deploy.Result:
    """A first release (no record) that created STATE and failed: the rollback deletes what it made."""
    options = deploy.Options(timeout=60, repository=REPOSITORY)
    results = [deploy.Result(NAME, "failed")]
    (undone,) = rollback.roll_back(None, [STATE], {NAME: None}, results, options, threading.Event(),
                                   environment="prod")  # fmt: skip
    return undone


def test_a_delete_that_fails_names_what_blocked_it_and_the_way_out(cfn: Stubber) -> None:
    described(cfn, "CREATE_COMPLETE")
    lift_and_delete(cfn)
    described(cfn, "DELETE_FAILED", "The following resource(s) failed to delete: [Bucket].")
    described(cfn, "DELETE_FAILED", "The following resource(s) failed to delete: [Bucket].")
    blocked = {"LogicalResourceId": "Bucket", "ResourceType": "AWS::S3::Bucket", "LastUpdatedTimestamp": NOW,
               "ResourceStatus": "DELETE_FAILED",
               "ResourceStatusReason": "The bucket you tried to delete is not empty"}  # fmt: skip
    cfn.add_response("list_stack_resources", {"StackResourceSummaries": [blocked]}, {"StackName": NAME})
    undone = roll_back_first_release()
    assert undone.outcome == "failed"
    (reason,) = undone.reasons
    assert "Bucket (AWS::S3::Bucket): The bucket you tried to delete is not empty" in reason
    assert f"aws cloudformation delete-stack --stack-name {NAME} --retain-resources Bucket" in reason


def test_a_create_still_running_is_waited_for_before_it_is_deleted(cfn: Stubber) -> None:
    described(cfn, "CREATE_IN_PROGRESS")
    described(cfn, "CREATE_IN_PROGRESS")
    described(cfn, "CREATE_COMPLETE")
    lift_and_delete(cfn)
    cfn.add_client_error("describe_stacks", "ValidationError", f"Stack with id {NAME} does not exist", 400,
                         expected_params={"StackName": NAME})  # fmt: skip
    assert roll_back_first_release().outcome == "deleted"
