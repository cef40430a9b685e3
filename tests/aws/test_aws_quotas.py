"""The quota preflight end to end (issue #16): `plan --against aws` reports an exceeded G quota with its
numbers, `deploy` refuses it with nothing changed, and `--ignore-quotas` deploys anyway.

Everything runs against the emulator except Service Quotas and CloudWatch's AWS/Usage metrics: moto does
not model Service Quotas usage (no applied values, no UsageMetric, nothing published in AWS/Usage), so
those two clients are botocore Stubbers fed the documented responses, handed to the product through its
one seam (`tooling.quotas.CLIENTS`, a client factory). EC2 DescribeInstances is the emulator's: the
instances the stack's group launches carry its `deployctl:stack` tag there as on AWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner

from tests.aws.conftest import git
from tests.aws.test_aws_end_to_end import push
from tooling import aws, cloudformation, quotas
from tooling.cli import cli

pytestmark = pytest.mark.slow

SPEC = """name: gpu-quota
owner: team@example.com
region: us-east-1
model: {{id: meta-llama/Llama-3.1-8B-Instruct}}
engine: {{type: vllm}}
compute: {{service: ecs-gpu, instance_type: g5.xlarge}}
scaling: {{min: 1, max: 4, target: {{requests_per_target: 100}}}}
network: {{vpc: {vpc}, private_subnets: [{subnets}], allowed_cidrs: [10.0.0.0/8]}}
"""
STACK = "dev-gpu-quota"
CODE = "L-DB2E81BA"
LINK = f"https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{CODE}"


class Stubbed:
    """Service Quotas and CloudWatch stubbed with one reading each; every other client the emulator's."""

    def __init__(self, value: float, usage: float) -> None:
        self.stubs: dict[str, tuple[Any, Stubber]] = {}
        for service in ("service-quotas", "cloudwatch"):
            client = boto3.client(service, region_name="us-east-1")
            self.stubs[service] = (client, Stubber(client))
        quota = {
            "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": f"arn:aws:servicequotas:us-east-1:123456789012:ec2/{CODE}", "QuotaCode": CODE,
            "QuotaName": "Running On-Demand G and VT instances", "Value": value, "Unit": "None",
            "Adjustable": True, "GlobalQuota": False,
            "UsageMetric": {"MetricNamespace": "AWS/Usage", "MetricName": "ResourceCount",
                            "MetricDimensions": {"Class": "G/OnDemand", "Resource": "vCPU", "Service": "EC2",
                                                 "Type": "Resource"},
                            "MetricStatisticRecommendation": "Maximum"},
        }  # fmt: skip
        self.stubs["service-quotas"][1].add_response(
            "get_service_quota", {"Quota": quota}, {"ServiceCode": "ec2", "QuotaCode": CODE}
        )
        self.stubs["cloudwatch"][1].add_response(
            "get_metric_data",
            {"MetricDataResults": [{"Id": "usage", "Label": "ResourceCount", "StatusCode": "Complete",
                                    "Values": [usage], "Timestamps": [dt.datetime.now(dt.UTC)]}]},
            {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": "TimestampDescending"},
        )  # fmt: skip
        for _, stub in self.stubs.values():
            stub.activate()

    def __call__(self, service: str, region: str) -> Any:
        if service in self.stubs:
            return self.stubs[service][0]
        return aws.client(service, region)

    def used(self) -> None:
        for _, stub in self.stubs.values():
            stub.assert_no_pending_responses()


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_plan_reports_and_deploy_refuses_an_exceeded_g_quota(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    path = tmp_path / "deployments/dev/gpu-quota.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(SPEC.format(vpc=vpc, subnets=", ".join(subnets)), encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", "https://github.com/acme/models.git")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "x")
    ecr = boto3.client("ecr", region_name="us-east-1")
    for repository in ("deployctl/gateway", "deployctl/vllm"):
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
    push("abc123")
    # The regional bootstrap's artifacts bucket, which a deploy needs once a template is over the inline
    # limit: this internal stack is, with its probe's code and its dashboard.
    boto3.client("s3", region_name="us-east-1").create_bucket(
        Bucket=cloudformation.artifacts_bucket(aws.account_id("us-east-1"), "us-east-1")
    )
    cfn = boto3.client("cloudformation", region_name="us-east-1")

    def feed(value: float, usage: float) -> Stubbed:
        stubbed = Stubbed(value, usage)
        monkeypatch.setattr(quotas, "CLIENTS", stubbed)
        return stubbed

    # Another team runs 8 vCPUs of G; the quota is 16; the deployment at max 4 (+1 for a rolling
    # deploy) needs 5 × g5.xlarge = 20 vCPUs: 28 in all, 12 over.
    stubbed = feed(16, 8)
    code, out = run(tmp_path, "plan", "--against", "aws", "--format", "json", "--image-tag", "abc123")
    stubbed.used()
    assert code == 1, out
    plan = json.loads(out)
    assert [s["action"] for s in plan["stacks"]] == ["create"]
    (check,) = plan["quotas"]["quotas"]
    assert plan["quotas"]["checked"] and plan["quotas"]["exceeded"] == 1
    assert (check["code"], check["name"], check["value"], check["usage"], check["own"]) == (
        CODE, "Running On-Demand G and VT instances", 16, 8, 0
    )  # fmt: skip
    assert (check["needed"], check["after"], check["exceeded"], check["link"]) == (20, 28, True, LINK)

    stubbed = feed(16, 8)
    code, out = run(tmp_path, "plan", "--against", "aws", "--image-tag", "abc123")
    assert code == 1
    assert "Running On-Demand G and VT instances (L-DB2E81BA) is 16 vCPUs" in out
    assert "5 × g5.xlarge (4 vCPUs) = 20" in out and "28 in all, 12 over" in out and LINK in out

    # An offline plan says it did not look.
    code, out = run(tmp_path, "plan", "--against", "git:HEAD", "--format", "json")
    assert json.loads(out)["quotas"] == {
        "checked": False, "note": f"quotas were not checked: {quotas.OFFLINE_NOTE}", "exceeded": 0,
        "warnings": [], "quotas": [],
    }  # fmt: skip

    # deploy refuses before any change: no stack, no change set.
    stubbed = feed(16, 8)
    code, out = run(tmp_path, "deploy", "--image-tag", "abc123", "--image-wait", "0")
    stubbed.used()
    assert code == 1, out
    assert "1 quota(s) would be exceeded at maximum scale; nothing deployed" in out
    assert "L-DB2E81BA" in out
    assert STACK not in {s["StackName"] for s in cfn.describe_stacks()["Stacks"]}

    # --ignore-quotas deploys anyway, and says so.
    feed(16, 8)
    code, out = run(tmp_path, "deploy", "--image-tag", "abc123", "--image-wait", "0", "--ignore-quotas")
    assert code == 0, out
    assert "deploying past 1 quota(s) (--ignore-quotas)" in out
    assert cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    # The stack now runs one instance (as ECS managed scaling would start it): usage is 8 + 4, and its
    # own 4 are not counted again on top of its ceiling: 8 + 20 = 28, which a quota of 28 holds.
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    resources = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    (group,) = [r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "InstanceGroup"]
    autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
    stubbed = feed(28, 12)
    code, out = run(tmp_path, "plan", "--against", "aws", "--format", "json")
    stubbed.used()
    assert code == 0, out
    (check,) = json.loads(out)["quotas"]["quotas"]
    assert (check["usage"], check["own"], check["needed"], check["after"], check["exceeded"]) == (
        12, 4, 20, 28, False
    )  # fmt: skip
