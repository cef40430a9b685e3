"""A rollback of a stack whose template is past CloudFormation's inline limit, in the AWS emulator.

TemplateBody holds at most 51,200 bytes; a larger template goes to CloudFormation as a TemplateURL of an
object in S3 (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html).
The artifacts bucket expires `templates/` objects (templates/bootstrap.py), so the object the recorded
release was deployed from may be gone when a rollback needs it: the rollback uploads the record's bytes
again rather than point at the old object.
"""

from __future__ import annotations

import json
import threading

import boto3
import pytest

from templates.stack import INLINE_LIMIT, inline_size
from tests.aws.conftest import MOTO_ACCOUNT, aws_env, emulator  # noqa: F401 - fixtures
from tooling import cloudformation as cf
from tooling import deploy
from tooling.release import records, rollback
from tooling.snapshot import StackState

pytestmark = pytest.mark.slow

REGION = "us-east-1"
REPOSITORY = "acme/models"


def big(version: str) -> str:
    # Metadata, not Description: a Description holds 1,024 bytes at most.
    pad = version * (INLINE_LIMIT + 1_000)
    return json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Metadata": {"pad": pad}}}})


def test_a_rollback_uploads_a_large_recorded_template_again(aws_env: str) -> None:  # noqa: F811
    s3 = boto3.client("s3", region_name=REGION)
    bucket = cf.artifacts_bucket(MOTO_ACCOUNT, REGION)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    good = StackState("staging", "chat", "deployments/staging/chat.yaml", REGION, big("a"))
    assert inline_size(good.text or "") > INLINE_LIMIT
    options = deploy.Options(timeout=120, repository=REPOSITORY, commit="a" * 40)
    cancel = threading.Event()
    assert [r.outcome for r in deploy.deploy_all([good], options, cancel)] == ["created"]

    # The lifecycle rule expires what the good release was deployed from (a delete marker, versioned).
    for listed in s3.list_objects_v2(Bucket=bucket, Prefix="templates/deploy/")["Contents"]:
        s3.delete_object(Bucket=bucket, Key=listed["Key"])
    assert s3.list_objects_v2(Bucket=bucket, Prefix="templates/deploy/")["KeyCount"] == 0

    bad = StackState("staging", "chat", "deployments/staging/chat.yaml", REGION, big("b"))
    # allow_revert: this test has no git history to place the two commits in.
    failed_release = deploy.Options(timeout=120, repository=REPOSITORY, commit="b" * 40, allow_revert=True)
    results = deploy.deploy_all([bad], failed_release, cancel)
    assert [r.outcome for r in results] == ["updated"]
    cfn = boto3.client("cloudformation", region_name=REGION)
    before = {good.stack_name: cf.describe(cfn, good.stack_name)}

    text = records.compact(good.text or "")
    record = records.Record("staging", "a" * 40, REPOSITORY, "2026-12-02T16:00:00+00:00", {
        good.stack_name: records.StackRecord(good.stack_name, "chat", good.file, REGION, text, {}, {}, "h"),
    })  # fmt: skip
    (undone,) = rollback.roll_back(
        record, [bad], before, results, failed_release, cancel, environment="staging"
    )
    assert (undone.outcome, undone.reasons) == ("updated", [])
    body = cfn.get_template(StackName=good.stack_name)["TemplateBody"]
    assert (body if isinstance(body, dict) else json.loads(body)) == json.loads(text)
    # The record's bytes are back where the rollback's change set read them.
    s3.head_object(Bucket=bucket, Key=f"templates/deploy/{good.stack_name}/{records.sha256(text)}.json")
