"""Client API key rotation, started on demand and proven: the new key works and so does the previous one.

Secrets Manager runs the deployment's rotation function (its four steps live in the stack); this waits
for the rotation to finish, then the caller checks both keys against the endpoint, because a rotation
that breaks clients still holding the previous key is a failed rotation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tooling import aws


@dataclass(frozen=True)
class Rotation:
    secret_arn: str
    previous_version: str
    current_version: str


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
