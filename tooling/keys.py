"""Client API key rotation, started on demand and proven: the new key works and so does the previous one.

Secrets Manager runs the deployment's rotation function (its four steps live in the stack); this waits
for the rotation to finish, then the caller checks both keys against the endpoint, because a rotation
that breaks clients still holding the previous key is a failed rotation.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from tooling import aws


@dataclass(frozen=True)
class Rotation:
    secret_arn: str
    previous_version: str
    current_version: str


@dataclass(frozen=True)
class KeyAge:
    """When the key in force came into force, read from DescribeSecret, and whether it is due."""

    since: dt.datetime
    source: str  # the DescribeSecret field `since` came from
    due_at: dt.datetime
    rotating: bool  # a rotation is under way (a version carries AWSPENDING)

    def due(self, now: dt.datetime) -> bool:
        return now >= self.due_at


def key_age(description: dict[str, Any], rotation_days: int) -> KeyAge:
    """The age of a secret's key from a DescribeSecret response, against `auth.rotation_days`.

    LastRotatedDate is "the last date and time that Secrets Manager rotated the secret", absent when it
    never has; a key never rotated is as old as the secret (CreatedDate). LastChangedDate is only the
    last resort: it moves when the secret is "modified in any way" (a tag, its description), which
    would postpone a rotation that is due.
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html
    """
    for field in ("LastRotatedDate", "CreatedDate", "LastChangedDate"):
        value = description.get(field)
        if value is not None:
            since = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            break
    else:
        raise ValueError(f"{description.get('ARN', 'the secret')}: DescribeSecret names no date of the key")
    stages = description.get("VersionIdsToStages") or {}
    return KeyAge(
        since=since,
        source=field,
        due_at=since + dt.timedelta(days=rotation_days),
        rotating=any("AWSPENDING" in s for s in stages.values()),
    )


def age(secret_arn: str, region: str, rotation_days: int) -> KeyAge:
    return key_age(aws.client("secretsmanager", region).describe_secret(SecretId=secret_arn), rotation_days)


def _current(stages: dict[str, list[str]]) -> str:
    return next(v for v, s in stages.items() if "AWSCURRENT" in s)


def rotate(secret_arn: str, region: str, *, timeout: float = 600.0, poll: float = 3.0) -> Rotation:
    sm = aws.client("secretsmanager", region)
    before = _current(sm.describe_secret(SecretId=secret_arn)["VersionIdsToStages"])
    sm.rotate_secret(SecretId=secret_arn)
    deadline = time.monotonic() + timeout
    while True:
        stages = sm.describe_secret(SecretId=secret_arn)["VersionIdsToStages"]
        current = _current(stages)
        pending = any("AWSPENDING" in s for s in stages.values())
        if current != before and not pending:
            return Rotation(secret_arn, before, current)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the rotation of {secret_arn} did not finish in {timeout:.0f}s")
        time.sleep(poll)


def key(secret_arn: str, region: str, stage: str = "AWSCURRENT") -> str:
    return aws.client("secretsmanager", region).get_secret_value(SecretId=secret_arn, VersionStage=stage)[
        "SecretString"
    ]


def works(url: str, api_key: str) -> bool:
    """Whether the endpoint serves its model list to this key."""
    from openai import AuthenticationError, OpenAI  # noqa: PLC0415

    try:
        OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key=api_key, max_retries=2, timeout=30).models.list()
    except AuthenticationError:
        return False
    return True
