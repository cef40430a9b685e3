"""The rotation Lambda's four steps against the AWS emulator's Secrets Manager (moto, in process).

moto cannot invoke a rotation Lambda (that needs Docker), so the test plays Secrets Manager's part:
it creates the AWSPENDING version with the rotation token and calls each step the way AWS does, with
RotationEnabled reported true as it is during a real rotation. The staging-label moves are moto's own.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from moto import mock_aws

from templates.rotation_handler import handler


class RotatingSecretsManager:
    """The real (emulated) client, seen the way the handler sees it while a rotation runs."""

    def __init__(self, client: Any):
        self._client = client
        self.exceptions = client.exceptions

    def describe_secret(self, **kwargs: Any) -> dict[str, Any]:
        return {**self._client.describe_secret(**kwargs), "RotationEnabled": True}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def stages(client: Any, arn: str) -> dict[str, list[str]]:
    return client.describe_secret(SecretId=arn)["VersionIdsToStages"]


def rotate(client: Any, arn: str) -> str:
    token = str(uuid.uuid4())
    sm = RotatingSecretsManager(client)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        event = {"SecretId": arn, "ClientRequestToken": token, "Step": step}
        if step == "createSecret":
            # The pending version does not exist until createSecret writes it with this token.
            handler_step_create(sm, event)
        else:
            handler(event, None, client=sm)
    # When the function returns from finishSecret, Secrets Manager itself drops the AWSPENDING label.
    client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    return token


def handler_step_create(sm: Any, event: dict[str, Any]) -> None:
    # Before createSecret, AWS has already recorded the token as AWSPENDING on the secret's metadata.
    original = sm.describe_secret

    def with_pending(**kwargs: Any) -> dict[str, Any]:
        meta = original(**kwargs)
        versions = dict(meta["VersionIdsToStages"])
        versions.setdefault(event["ClientRequestToken"], ["AWSPENDING"])
        return {**meta, "VersionIdsToStages": versions}

    sm.describe_secret = with_pending
    try:
        handler(event, None, client=sm)
    finally:
        sm.describe_secret = original


def test_a_rotation_makes_a_new_current_key_and_keeps_the_previous(secrets: Any) -> None:
    arn = secrets.create_secret(Name="deployctl/dev/x/api-key", SecretString="A" * 48)["ARN"]
    token = rotate(secrets, arn)
    current = secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    previous = secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
    assert current["VersionId"] == token
    assert previous["SecretString"] == "A" * 48
    assert current["SecretString"] != previous["SecretString"]
    assert len(current["SecretString"]) == 48
    assert current["SecretString"].isalnum()
    assert "AWSPENDING" not in str(stages(secrets, arn)[token])


def test_two_rotations_keep_exactly_one_previous_key(secrets: Any) -> None:
    arn = secrets.create_secret(Name="k", SecretString="B" * 48)["ARN"]
    # Explicit stages: moto's stage-less read lags behind UpdateSecretVersionStage (AWS's does not).
    first = secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    rotate(secrets, arn)
    second = secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    rotate(secrets, arn)
    assert secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"] == second
    assert first not in {
        secrets.get_secret_value(SecretId=arn, VersionStage=s)["SecretString"]
        for s in ("AWSCURRENT", "AWSPREVIOUS")
    }


def test_create_is_idempotent_when_retried(secrets: Any) -> None:
    arn = secrets.create_secret(Name="k2", SecretString="C" * 48)["ARN"]
    token = str(uuid.uuid4())
    sm = RotatingSecretsManager(secrets)
    event = {"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}
    handler_step_create(sm, event)
    pending = secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")[
        "SecretString"
    ]
    handler(event, None, client=sm)  # AWS retries a step that timed out
    again = secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
    assert again == pending


def test_a_bad_pending_key_fails_the_test_step(secrets: Any) -> None:
    arn = secrets.create_secret(Name="k3", SecretString="D" * 48)["ARN"]
    token = str(uuid.uuid4())
    secrets.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString="short", VersionStages=["AWSPENDING"]
    )
    with pytest.raises(ValueError, match="not a well-formed key"):
        handler({"SecretId": arn, "ClientRequestToken": token, "Step": "testSecret"}, None,
                client=RotatingSecretsManager(secrets))  # fmt: skip


def test_refuses_when_rotation_is_off_or_token_unknown(secrets: Any) -> None:
    arn = secrets.create_secret(Name="k4", SecretString="E" * 48)["ARN"]
    with pytest.raises(ValueError, match="rotation is not enabled"):
        handler({"SecretId": arn, "ClientRequestToken": "t", "Step": "createSecret"}, None, client=secrets)
    with pytest.raises(ValueError, match="not a version of the secret"):
        handler({"SecretId": arn, "ClientRequestToken": "t", "Step": "createSecret"}, None,
                client=RotatingSecretsManager(secrets))  # fmt: skip


class LateReader(RotatingSecretsManager):
    """An invocation that read before an overlapping one wrote: it sees no pending value, and its write
    meets the version the other made. AWS answers PutSecretValue for an existing token with a different
    value with ResourceExistsException (Secrets Manager API reference, PutSecretValue)."""

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        raise self.exceptions.ResourceNotFoundException(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "no such version"}}, "GetSecretValue"
        )

    def put_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        raise self.exceptions.ResourceExistsException(
            {"Error": {"Code": "ResourceExistsException", "Message": "version exists"}}, "PutSecretValue"
        )


def test_overlapping_create_steps_keep_the_first_key(secrets: Any) -> None:
    arn = secrets.create_secret(Name="k5", SecretString="F" * 48)["ARN"]
    token = str(uuid.uuid4())
    event = {"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}
    handler_step_create(RotatingSecretsManager(secrets), event)
    first = secrets.get_secret_value(SecretId=arn, VersionId=token)["SecretString"]
    handler_step_create(LateReader(secrets), event)  # must not raise: the step is done
    assert secrets.get_secret_value(SecretId=arn, VersionId=token)["SecretString"] == first
