"""templates/runtime/boot_aws.py, the ec2 host's standard-library AWS client: its signatures are
botocore's, and it reads what the emulator holds through AWS_ENDPOINT_URL like any SDK."""

from __future__ import annotations

import ast
import datetime
import importlib.util
import subprocess
import sys
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SOURCE = Path(__file__).parents[2] / "templates" / "runtime" / "boot_aws.py"
NOW = datetime.datetime(2026, 11, 30, 12, 34, 56, tzinfo=datetime.UTC)


def test_runs_on_the_amis_python_3_9() -> None:
    # AL2023's system python3 is 3.9: no syntax newer than that.
    ast.parse(SOURCE.read_text(encoding="utf-8"), feature_version=(3, 9))


def load():
    spec = importlib.util.spec_from_file_location("boot_aws", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("service", "url", "headers", "body"),
    [
        ("ecr", "https://api.ecr.us-east-1.amazonaws.com/",
         {"Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"}, b"{}"),
        ("cloudformation", "https://cloudformation.us-east-1.amazonaws.com/",
         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         b"Action=SignalResource&Version=2010-05-15&StackName=dev-x&LogicalResourceId=InstanceGroup"
         b"&UniqueId=i-0abc&Status=SUCCESS"),
        ("secretsmanager", "https://secretsmanager.us-east-1.amazonaws.com/?b=2&a=1%20x",
         {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"},
         b'{"SecretId": "hf/token"}'),
    ],
)  # fmt: skip
def test_signature_v4_is_the_one_botocore_computes(
    service: str, url: str, headers: dict, body: bytes
) -> None:
    boot = load()
    creds = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG", "Token": "session/+="}
    ours = boot.sign("POST", url, "us-east-1", service, headers, body, creds, NOW)
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(
        Credentials("ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG", "session/+="), service, "us-east-1"
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"] == "20261130T123456Z"
    assert ours["x-amz-security-token"] == "session/+="


@pytest.mark.slow
def test_reads_the_ecr_password_and_a_secret_through_the_emulator(aws_env: str) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="hf/token", SecretString="hf_emulated"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": aws_env,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SOURCE), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    secret = run("secret", "hf/token")
    assert (secret.returncode, secret.stdout) == (0, "hf_emulated"), secret.stderr
    password = run("ecr-password")
    assert password.returncode == 0 and password.stdout, password.stderr
    reachable = run("reachable")
    assert reachable.returncode == 0, reachable.stderr
    missing = run("secret", "no/such")
    assert missing.returncode == 1 and "HTTPError" in missing.stderr  # retryable, no traceback
    assert "Traceback" not in missing.stderr
    assert run().returncode == 2 and "usage:" in run().stderr
