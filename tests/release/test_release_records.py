"""Release records: what is recorded, what is refused, and how two releases racing are told apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from tests.aws.conftest import MOTO_ACCOUNT
from tooling import cloudformation as cf
from tooling.release import records

TEMPLATE = json.dumps(
    {
        "Parameters": {
            "GatewayImageTag": {"Type": "String"},
            "GpuAmi": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": "/aws/x"},
        },
        "Resources": {},
    }
)


def stack(**values: str) -> dict:
    return {
        "StackName": "prod-chat",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    }


def test_parameters_without_a_default_are_recorded_and_defaults_are_left_to_the_template() -> None:
    values = records.recorded_parameters(TEMPLATE, stack(GatewayImageTag="abc", GpuAmi="ami-1"))
    assert values == {"GatewayImageTag": "abc"}


def test_a_noecho_parameter_is_never_recorded() -> None:
    secret = json.dumps({"Parameters": {"Token": {"Type": "String", "NoEcho": "true"}}, "Resources": {}})
    with pytest.raises(records.RecordError, match="NoEcho parameter"):
        records.recorded_parameters(secret, stack(Token="****"))
    # A masked value is no value, whatever the template says.
    for mask in ("****", "*****"):
        with pytest.raises(records.RecordError, match="no recordable value"):
            records.recorded_parameters(TEMPLATE, stack(GatewayImageTag=mask))
    with pytest.raises(records.RecordError, match="no recordable value"):
        records.recorded_parameters(TEMPLATE, stack())


def record(commit: str = "a" * 40) -> records.Record:
    text = records.compact(TEMPLATE)
    entry = records.StackRecord("prod-chat", "chat", "deployments/prod/chat.yaml", "us-east-1", text,
                                {"GatewayImageTag": "abc"}, {"GatewayImageTag": "abc"}, "f" * 32)  # fmt: skip
    return records.Record("prod", commit, "acme/models", "2026-12-02T15:00:00+00:00", {"prod-chat": entry})


def test_a_record_reads_back_as_written_and_an_unknown_format_is_refused() -> None:
    original = record()
    data = json.loads(json.dumps(original.to_json()))
    assert records.Record.from_json(data, "k") == records.Record(**{**original.__dict__, "key": "k"})
    stacked = data["stacks"]["prod-chat"]
    assert stacked["template_sha256"] == records.sha256(stacked["template"])
    assert stacked["parameters_sha256"] == records.sha256(
        json.dumps({"GatewayImageTag": "abc"}, sort_keys=True)
    )
    with pytest.raises(records.RecordError, match="record format 2"):
        records.Record.from_json({**data, "format": 2}, "k")


def test_keys_sort_by_time_and_name_the_commit() -> None:
    key = records.record_key("prod", "b" * 40, datetime(2026, 12, 2, 15, 4, 5, tzinfo=UTC))
    assert key == f"releases/prod/20261202T150405Z-{'b' * 40}.json"
    assert records.latest_key("prod") == "releases/prod/latest.json"


@pytest.fixture
def bucket(aws_env: str) -> str:
    name = cf.artifacts_bucket(MOTO_ACCOUNT, "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.mark.slow
def test_two_releases_racing_cannot_both_become_the_latest(bucket: str) -> None:
    store = records.Store("prod", "us-east-1")
    assert store.latest() == (None, None)
    store.write(record("1" * 40), None)
    # A second release that read "no release yet" before the first one recorded.
    with pytest.raises(records.Conflict, match="another release of prod was recorded"):
        store.write(record("2" * 40), None)
    latest, etag = store.latest()
    assert latest is not None and latest.commit == "1" * 40
    store.write(record("3" * 40), etag)
    with pytest.raises(records.Conflict):
        store.write(record("4" * 40), etag)  # a stale ETag
    latest, etag = store.latest()
    assert latest is not None and latest.commit == "3" * 40
    # A record is never overwritten, even by the same release again.
    with pytest.raises(records.Conflict):
        store.write(record("3" * 40), etag)


@pytest.mark.slow
def test_no_artifacts_bucket_says_to_bootstrap(aws_env: str) -> None:
    with pytest.raises(records.RecordError, match="run `deployctl bootstrap`"):
        records.Store("prod", "us-east-1").latest()


def test_store_paths_are_the_ones_bootstrap_grants() -> None:
    from templates.bootstrap import RELEASE_RECORDS

    assert records.latest_key("dev").split("/")[0] == RELEASE_RECORDS


@pytest.mark.parametrize(
    ("code", "status"), [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)]
)
def test_both_answers_s3_gives_a_lost_race_read_as_a_conflict(
    code: str, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PutObject with If-Match or If-None-Match: 412 when the condition fails, 409 when a conflicting
    # write raced this one (the PutObject API reference; moto answers only 412), so Stubber.
    from botocore.stub import ANY, Stubber

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr("tooling.aws.client", lambda service, region: s3)
    store = records.Store("prod", "us-east-1", bucket="b")
    with Stubber(s3) as stubber:
        stubber.add_response("put_object", {"ETag": '"1"'}, {"Bucket": "b", "Key": ANY, "Body": ANY,
                             "ContentType": "application/json", "IfNoneMatch": "*"})  # fmt: skip
        pointer = {"Bucket": "b", "Key": records.latest_key("prod"), "Body": ANY,
                   "ContentType": "application/json", "IfMatch": '"e"'}  # fmt: skip
        stubber.add_client_error("put_object", code, "A precondition failed", status, expected_params=pointer)
        with pytest.raises(records.Conflict, match="run the release again"):
            store.write(record(), '"e"')
        stubber.assert_no_pending_responses()
