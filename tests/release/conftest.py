"""The release harness: a git checkout with deployments, released into the AWS emulator.

The emulator is the moto server of tests/aws/conftest.py, reached only through AWS_ENDPOINT_URL. The
account is prepared the way bootstrap and CI leave it, without running them: a versioned artifacts
bucket, the ECR repositories, and the images each commit names pushed (CI's image jobs). Deployments
are internal endpoints in an existing VPC (moto deletes no NAT gateway, so a stack owning its VPC could
not be deleted by a rollback). Smoke tests are replaced at `tooling.smoke.check_deployment`, the one
function a release calls, so the harness never depends on how an endpoint is reached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from tests.aws.conftest import MOTO_ACCOUNT, aws_env, emulator, git  # noqa: F401 - fixtures
from tooling import cloudformation as cf
from tooling import smoke
from tooling.cli import cli
from tooling.release import images, records

REGION = "us-east-1"
REPOSITORY = "acme/models"
ENVIRONMENTS = f"""github_repository: {REPOSITORY}
ci: {{account_id: "{MOTO_ACCOUNT}", region: {REGION}}}
environments:
  staging: {{account_id: "{MOTO_ACCOUNT}", regions: [{REGION}]}}
  prod: {{account_id: "{MOTO_ACCOUNT}", regions: [{REGION}], required_reviewers: true}}
"""
SPEC = """name: {name}
owner: team@example.com
region: {region}
model: {{id: {model}}}
engine: {{type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}}
compute: {{service: ecs-fargate}}
scaling: {{min: 1, max: {max}, target: {{cpu_percent: 70}}}}
network: {{vpc: {vpc}, private_subnets: [{subnets}], allowed_cidrs: [10.0.0.0/8]}}
"""
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
     "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                "digest": "sha256:" + "c" * 64}, "layers": []}
)  # fmt: skip


@dataclass
class Smoke:
    """What stands in for tooling.smoke.check_deployment: passes unless told which stacks fail."""

    failing: set[str] = field(default_factory=set)
    calls: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, deployment: Any, **kwargs: Any) -> smoke.Report:
        self.calls.append((deployment, kwargs))
        report = smoke.Report(f"{deployment.environment}/{deployment.name}", "http://internal", "m", "test")
        ok = deployment.stack_name not in self.failing
        report.checks.append(smoke.Check("chat", ok, 0.01, "" if ok else "HTTP 502 from the endpoint"))
        return report


class Checkout:
    def __init__(self, root: Path, vpc: str, subnets: list[str]) -> None:
        self.root, self.vpc, self.subnets = root, vpc, subnets

    def spec(self, env: str, name: str, *, model: str = "gpt-4o", max: int = 2) -> Path:
        path = self.root / "deployments" / env / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = SPEC.format(
            name=name, region=REGION, model=model, max=max, vpc=self.vpc, subnets=", ".join(self.subnets)
        )
        path.write_text(text, encoding="utf-8")
        return path

    def write(self, relative: str, text: str) -> None:
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.root / relative).write_text(text, encoding="utf-8")

    def commit(self, message: str = "change") -> str:
        git(self.root, "add", "-A")
        git(self.root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", message)
        sha = git(self.root, "rev-parse", "HEAD")
        self.push_images()
        return sha

    def checkout(self, ref: str) -> None:
        git(self.root, "checkout", "-q", ref)

    def push_images(self) -> None:
        """What CI's image jobs do for this commit: the gateway tag the checkout names is pushed."""
        ecr = boto3.client("ecr", region_name=REGION)
        tag = images.image_commit(self.root, "gateway")
        listed = ecr.list_images(repositoryName="deployctl/gateway")["imageIds"]
        if tag not in {i.get("imageTag") for i in listed}:
            ecr.put_image(repositoryName="deployctl/gateway", imageManifest=MANIFEST, imageTag=tag)

    def release(self, env: str, *args: str) -> tuple[int, dict[str, Any], str]:
        result = CliRunner().invoke(
            cli, ["--root", str(self.root), "release", env, "--format", "json", "--image-wait", "0", *args],
            catch_exceptions=False,
        )  # fmt: skip
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(result.output) from None
        return result.exit_code, report, result.stderr


@pytest.fixture
def fake_smoke(monkeypatch: pytest.MonkeyPatch) -> Smoke:
    stand_in = Smoke()
    monkeypatch.setattr(smoke, "check_deployment", stand_in)
    return stand_in


@pytest.fixture
def checkout(tmp_path: Path, aws_env: str, fake_smoke: Smoke) -> Checkout:  # noqa: F811
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    s3 = boto3.client("s3", region_name=REGION)
    bucket = cf.artifacts_bucket(MOTO_ACCOUNT, REGION)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ecr = boto3.client("ecr", region_name=REGION)
    for repository in ("deployctl/gateway", "deployctl/vllm"):
        ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    # The repository identity every stack is tagged with (tooling/ownership.py); never fetched from.
    git(root, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    made = Checkout(root, vpc, subnets)
    made.write("deployments/environments.yaml", ENVIRONMENTS)
    made.write("inference_server/app.py", "# the gateway\n")
    return made


def live_stacks(env: str) -> dict[str, dict[str, Any]]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    return {
        s["StackName"]: s
        for s in cfn.describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE" and cf.tags_of(s).get("deployctl:environment") == env
    }


def latest_record(env: str) -> records.Record:
    record, _ = records.Store(env, REGION).latest()
    assert record is not None
    return record


def deployed_template(name: str) -> dict[str, Any]:
    body = boto3.client("cloudformation", region_name=REGION).get_template(StackName=name)["TemplateBody"]
    return body if isinstance(body, dict) else json.loads(body)


def parameters_of(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def assert_at_record(env: str, *, commit: str | None = None) -> records.Record:
    """Every stack of `env` runs exactly what the latest release record says: no more stacks, no fewer,
    the recorded template bytes, parameter values and hash tag."""
    record = latest_record(env)
    if commit is not None:
        assert record.commit == commit
    live = live_stacks(env)
    assert set(live) == set(record.stacks)
    for name, recorded in record.stacks.items():
        stack = live[name]
        assert stack["StackStatus"] in cf.SUCCESS, (name, stack["StackStatus"])
        assert deployed_template(name) == json.loads(recorded.template), name
        assert (
            records.sha256(records.compact(json.dumps(deployed_template(name)))) == recorded.template_sha256
        )
        declared = json.loads(recorded.template).get("Parameters", {})
        without_default = {k for k, spec in declared.items() if "Default" not in spec}
        assert {k: v for k, v in parameters_of(stack).items() if k in without_default} == recorded.parameters
        assert cf.tags_of(stack)[cf.HASH_TAG] == recorded.stack_hash, name
    return record
