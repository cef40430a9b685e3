"""Rotates a deployment's client API key in four steps; the previous key stays valid as AWSPREVIOUS.

Shipped inline in the template (ZipFile, under 4 KiB). No external system holds the key: the gateways
read AWSCURRENT, AWSPREVIOUS and AWSPENDING from the secret themselves, so `setSecret` has nothing to do.
Every step is idempotent, and safe when Lambda runs two invocations of it at once (a retry after a
timeout): there is no reserved concurrency to prevent that, and Secrets Manager starts no second
rotation of a secret while one is pending.
"""

import contextlib

import boto3

MIN_LENGTH = 32


def handler(event, context, client=None):
    sm = client or boto3.client("secretsmanager")
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    meta = sm.describe_secret(SecretId=arn)
    if not meta.get("RotationEnabled"):
        raise ValueError("rotation is not enabled on the secret")
    stages = meta.get("VersionIdsToStages", {})
    if token not in stages:
        raise ValueError("the version being rotated is not a version of the secret")
    if "AWSCURRENT" in stages[token]:
        return  # a retried finishSecret: already done
    if "AWSPENDING" not in stages[token]:
        raise ValueError("the version being rotated is not AWSPENDING")
    if step == "createSecret":
        try:
            sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except sm.exceptions.ResourceNotFoundException:
            key = sm.get_random_password(PasswordLength=48, ExcludePunctuation=True)["RandomPassword"]
            # An overlapping invocation of this step may have written the version first: it stands.
            with contextlib.suppress(sm.exceptions.ResourceExistsException):
                sm.put_secret_value(
                    SecretId=arn, ClientRequestToken=token, SecretString=key, VersionStages=["AWSPENDING"]
                )
    elif step == "setSecret":
        pass
    elif step == "testSecret":
        pending = sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        if len(pending["SecretString"]) < MIN_LENGTH or not pending["SecretString"].isalnum():
            raise ValueError("the pending key is not a well-formed key")
    elif step == "finishSecret":
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
    else:
        raise ValueError("unknown rotation step")
