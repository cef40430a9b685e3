"""The AWS emulator for the end-to-end tests: moto in server mode on 127.0.0.1, one per xdist worker.

The product code only sees `AWS_ENDPOINT_URL`. moto's gaps are closed in the emulator (see
tools/local_aws.py, which `make local-aws` runs too), never in the product; and moto's SageMaker lists
no instance type newer than g4dn, so the test copy of the SageMaker example uses ml.g4dn.2xlarge.
What moto cannot do at all (rollback states, ContinueUpdateRollback, change-set replacement details)
is covered by Stubber tests.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import settings as moto_settings
from moto.server import ThreadedMotoServer

from templates.gpu_hosts import GPU_AMI_PARAMETER
from tooling import aws
from tools.local_aws import announce, fix_moto

ROOT = Path(__file__).parents[2]
CERT_PLACEHOLDER = "arn:aws:acm:us-east-1:123456789012:certificate/"
MOTO_ACCOUNT = "123456789012"  # moto's default account: what plain test credentials reach


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    fix_moto()
    # moto holds a requested certificate in PENDING_VALIDATION for a minute; AWS issues it once its DNS
    # record validates, which in an emulated account is at once.
    moto_settings.ACM_VALIDATION_WAIT = 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    announce(f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty emulated account, reached the one way the product knows: AWS_ENDPOINT_URL."""
    urllib.request.urlopen(urllib.request.Request(f"{emulator}/moto-api/reset", method="POST"), timeout=10)
    for name, value in {
        "AWS_ENDPOINT_URL": emulator,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    aws.reset()
    # moto fills the public /aws/service parameters lazily; CloudFormation's SSM-typed parameters
    # (the GPU AMI) need them present, as they always are in AWS.
    boto3.client("ssm", region_name="us-east-1").get_parameter(Name=GPU_AMI_PARAMETER)
    yield emulator
    aws.reset()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, aws_env: str) -> Path:
    """A git repository holding copies of the examples, with a certificate the emulated account has."""
    acm = boto3.client("acm", region_name="us-east-1")
    # The examples' endpoints are <name>.example.com; deploy checks the certificate covers them.
    cert = acm.request_certificate(DomainName="example.com", SubjectAlternativeNames=["*.example.com"])[
        "CertificateArn"
    ]
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments")
    for path in (tmp_path / "deployments").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("ml.g5.2xlarge", "ml.g4dn.2xlarge")
        for line in text.splitlines():
            if CERT_PLACEHOLDER in line:
                text = text.replace(line.split(": ", 1)[1], cert)
        path.write_text(text, encoding="utf-8")
    # One emulated account holds every environment here (tests/aws/test_aws_bootstrap.py has several).
    environments = tmp_path / "deployments/environments.yaml"
    text = environments.read_text(encoding="utf-8")
    for account in ("111111111111", "222222222222", "333333333333"):
        text = text.replace(account, MOTO_ACCOUNT)
    environments.write_text(text, encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main")
    # The repository identity every stack is tagged with (tooling/ownership.py); never fetched from.
    git(tmp_path, "remote", "add", "origin", "https://github.com/acme/models.git")
    git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "examples")
    return tmp_path
