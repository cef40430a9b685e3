"""An `ecs-gpu` stack is created, deleted and created again in the emulator, through deployctl.

moto deletes a stack's resources in no particular order (it retries whatever fails), and runs the
host-cleanup custom resource's inline function in-process (tools/local_aws.py). The order AWS uses,
and what the cleanup does on AWS, are asserted in tests/templates/test_gpu_targets.py (the dependency
graph) and tests/aws/test_host_cleanup.py (the documented API responses).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from tests.aws.conftest import git
from tests.aws.test_aws_end_to_end import push
from tooling import aws, cloudformation
from tooling.cli import cli

pytestmark = pytest.mark.slow

# In an existing VPC: moto's CloudFormation does not delete NAT gateways or VPC endpoints, so a stack
# that owns its VPC never finishes deleting there, whatever its target.
SPEC = """name: gpu-cycle
owner: team@example.com
region: us-east-1
model: {{id: meta-llama/Llama-3.1-8B-Instruct}}
engine: {{type: vllm}}
compute: {{service: ecs-gpu, instance_type: g5.xlarge}}
scaling: {{min: 1, max: 2, target: {{requests_per_target: 100}}}}
network: {{vpc: {vpc}, private_subnets: [{subnets}], allowed_cidrs: [10.0.0.0/8]}}
"""
STACK = "dev-gpu-cycle"
# Never deployed here (the test deploys only dev): it keeps us-east-1 among the regions --prune looks at.
OTHER = """name: keep
owner: team@example.com
region: us-east-1
model: {id: gpt-4o}
engine: {type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}
compute: {service: ecs-fargate}
"""


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False)
    return result.exit_code, result.output


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "change")


def test_an_ecs_gpu_stack_is_created_deleted_and_created_again(tmp_path: Path, aws_env: str) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    spec = SPEC.format(vpc=vpc, subnets=", ".join(subnets))
    path = tmp_path / "deployments/dev/gpu-cycle.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(spec, encoding="utf-8")
    (tmp_path / "deployments/staging").mkdir()
    (tmp_path / "deployments/staging/keep.yaml").write_text(OTHER, encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main")
    # The repository identity every stack is tagged with (tooling/ownership.py), as a clone has it.
    git(tmp_path, "remote", "add", "origin", "https://github.com/acme/models.git")
    commit(tmp_path)
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")

    def groups() -> list[str]:
        return [
            g["AutoScalingGroupName"] for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
        ]

    # The images the deploy names are in the stack's region, as CI's push (and replication) leave them:
    # deploy checks that before any change.
    ecr = boto3.client("ecr", region_name="us-east-1")
    for repository in ("deployctl/gateway", "deployctl/vllm"):
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
    push("abc123")
    # The regional bootstrap's artifacts bucket, which a deploy needs once a template is over the inline
    # limit: this internal stack is, with its smoke probe's code inline.
    boto3.client("s3", region_name="us-east-1").create_bucket(
        Bucket=cloudformation.artifacts_bucket(aws.account_id("us-east-1"), "us-east-1")
    )
    for attempt in ("first", "again"):
        code, out = run(
            tmp_path, "deploy", "--environment", "dev", "--image-tag", "abc123", "--image-wait", "0"
        )
        assert code == 0, (attempt, out)
        assert f"{STACK}" in out and "created" in out, out
        listed = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        resources = {r["LogicalResourceId"]: r for r in listed if "LogicalResourceId" in r}
        assert resources["HostCleanup"]["ResourceStatus"] == "CREATE_COMPLETE"
        # The load balancer is internal: the stack brings the probe that smoke-tests it from inside.
        assert resources["SmokeProbeFunction"]["ResourceStatus"] == "CREATE_COMPLETE"
        group = resources["InstanceGroup"]["PhysicalResourceId"]
        assert group in groups()
        (described,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ]
        assert described["MaxSize"] == 3  # scaling.max 2, plus the instance a deploy at full scale needs
        assert described["NewInstancesProtectedFromScaleIn"] is True
        # What ECS managed scaling does when the service's task needs a host: an instance comes, and
        # it is protected from scale-in, so deleting the group alone would leave it running.
        autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
        (instance,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ][0]["Instances"]
        assert instance["ProtectedFromScaleIn"] is True

        # The file goes: --prune deletes the stack, and nothing of it is left behind.
        path.unlink()
        commit(tmp_path)
        code, out = run(tmp_path, "deploy", "--environment", "dev", "--prune")
        assert code == 0, (attempt, out)
        assert "deleted" in out, out
        live = [
            s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
        ]
        assert STACK not in live
        assert group not in groups()
        (reservation,) = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"]
        assert reservation["Instances"][0]["State"]["Name"] == "terminated"
        path.write_text(spec, encoding="utf-8")
        commit(tmp_path)
