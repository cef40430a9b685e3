"""bootstrap, deploy, plan, redeploy and prune against the AWS emulator, as a user would on a laptop."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from tooling.cli import cli

pytestmark = pytest.mark.slow


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False)
    return result.exit_code, result.output


def plan_json(repo: Path, *args: str) -> dict:
    code, out = run(repo, "plan", "--format", "json", *args)
    assert code in (0, 2), out
    return json.loads(out)


def actions(plan: dict) -> dict[str, str]:
    return {s["stack_name"]: s["action"] for s in plan["stacks"]}


MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
     "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                "digest": "sha256:" + "b" * 64}, "layers": []}
)  # fmt: skip


# vLLM images are tagged <engine.version>-<commit>, and the stack's VllmImageTag admits nothing else.
VLLM = "0.34.0-" + "a" * 40
VLLM_NEXT = "0.34.0-" + "b" * 40
TAGS = ("--image-tag", "gateway=abc123", "--image-tag", f"vllm={VLLM}")


def push(*tags: str) -> None:
    """What CI's image jobs do (the examples' account is also the CI registry here)."""
    ecr = boto3.client("ecr", region_name="us-east-1")
    for tag in tags:
        for repository in ("deployctl/gateway", "deployctl/vllm"):
            ecr.put_image(repositoryName=repository, imageManifest=MANIFEST, imageTag=tag)


def test_bootstrap_deploy_plan_redeploy_prune(repo: Path) -> None:
    code, out = run(repo, "bootstrap")
    assert code == 0, out
    assert "us-east-1: deployctl-bootstrap CREATE_COMPLETE" in out
    assert "us-east-1: deployctl-account CREATE_COMPLETE" in out
    repositories = boto3.client("ecr", region_name="us-east-1").describe_repositories()["repositories"]
    assert {r["repositoryName"]: r["imageTagMutability"] for r in repositories} == {
        "deployctl/gateway": "IMMUTABLE",
        "deployctl/vllm": "IMMUTABLE",
    }
    # An image tag that was never pushed: the plan says so, before any change set.
    code, out = run(repo, "plan", "--format", "json", "--against", "aws", "--image-tag", "abc123")
    assert code == 1, out
    plan = json.loads(out)
    assert set(actions(plan).values()) == {"invalid"}
    assert all("is not in us-east-1's ECR repository" in s["errors"][0] for s in plan["stacks"])
    push("abc123", VLLM, VLLM_NEXT)
    # Another vLLM version's image (or any tag but <version>-<commit>) is refused before a change set.
    code, out = run(repo, "plan", "--format", "json", "--against", "aws", "--image-tag", "abc123")
    assert code == 1, out
    llama = next(s for s in json.loads(out)["stacks"] if s["stack_name"] == "prod-llama-3-1-8b")
    assert llama["action"] == "invalid"
    assert "VllmImageTag 'abc123' does not match ^0\\.34\\.0-[0-9a-f]{40}$" in llama["errors"][0]

    # Nothing deployed yet: the AWS plan creates everything, and leaves no change set or shell behind.
    plan = plan_json(repo, "--against", "aws", *TAGS)
    assert set(actions(plan).values()) == {"create"}
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    assert sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"]) == [
        "deployctl-account", "deployctl-bootstrap"
    ]  # fmt: skip

    code, out = run(repo, "deploy", *TAGS)
    assert code == 0, out
    stacks = {s["StackName"]: s for s in cfn.describe_stacks()["Stacks"]}
    for name in ("prod-llama-3-1-8b", "prod-multimodal-api", "staging-qwen2-5-vl-7b", "dev-mistral-7b"):
        assert stacks[name]["StackStatus"] == "CREATE_COMPLETE", name
        tags = {t["Key"]: t["Value"] for t in stacks[name]["Tags"]}
        assert tags["deployctl:managed-by"] == "deployctl"
    assert stacks["prod-llama-3-1-8b"]["EnableTerminationProtection"] is True
    assert stacks["dev-mistral-7b"]["EnableTerminationProtection"] is False
    code, out = run(repo, "status", "--region", "us-east-1")
    assert code == 0 and "prod-multimodal-api" in out and "CREATE_COMPLETE" in out
    # Each stack's dashboard: created under its stack and region's name, its console URL printed whole.
    listed = boto3.client("cloudwatch", region_name="us-east-1").list_dashboards()["DashboardEntries"]
    names = {d["DashboardName"] for d in listed}
    url = "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/"
    for name in ("prod-llama-3-1-8b", "prod-multimodal-api", "staging-qwen2-5-vl-7b", "dev-mistral-7b"):
        assert f"{name}-us-east-1" in names
        assert f"{url}{name}-us-east-1" in out, out
    code, listed = run(repo, "status", "--region", "us-east-1", "--format", "json")
    dashboards = {s["stack_name"]: s["dashboard"] for s in json.loads(listed)["stacks"]}
    assert dashboards["dev-mistral-7b"] == f"{url}dev-mistral-7b-us-east-1"

    # Redeploying the same thing is the fast path: no change set at all.
    code, out = run(repo, "deploy")
    assert code == 0, out
    assert out.count("unchanged") == 4
    assert set(actions(plan_json(repo, "--against", "aws")).values()) == {"no-change"}

    # Issue 14 #3: a deploy bound to the reviewed plan applies it unchanged, and refuses a changed stack.
    code, reviewed = run(repo, "plan", "--against", "git:HEAD", "--format", "json")
    assert code == 0, reviewed
    (repo / "reviewed.json").write_text(reviewed, encoding="utf-8")
    code, out = run(repo, "deploy", "--plan", str(repo / "reviewed.json"))
    assert code == 0, out
    assert out.count("unchanged") == 4

    # One file changes: only its stack is in the plan, both against AWS and against git.
    path = repo / "deployments/prod/llama-3-1-8b.yaml"
    path.write_text(path.read_text().replace("max: 4", "max: 6"), encoding="utf-8")
    code, out = run(repo, "deploy", "--plan", str(repo / "reviewed.json"))
    assert code == 1
    assert "refused: prod-llama-3-1-8b: differs from the reviewed plan in its template" in out
    assert "1 stack(s) differ from the reviewed plan" in out
    aws_plan = actions(plan_json(repo, "--against", "aws"))
    assert aws_plan.pop("prod-llama-3-1-8b") in ("update", "replace")
    assert set(aws_plan.values()) == {"no-change"}
    git_plan = plan_json(repo, "--against", "git:HEAD")
    assert {k: v for k, v in actions(git_plan).items() if v != "no-change"} == {"prod-llama-3-1-8b": "update"}
    (changed,) = [s for s in git_plan["stacks"] if s["action"] == "update"]
    # The service may scale to 6 tasks, and the GPU instance group to 6 instances to hold them plus
    # the one a deploy at full scale starts next to them; the dashboard's estimate at the most the spec
    # allows follows.
    found = {c["logical_id"]: c["properties"] for c in changed["changes"]}
    assert [p["path"] for p in found.pop("Dashboard")] == ["Properties.DashboardBody"]
    assert found == {
        "InstanceGroup": [{"path": "Properties.MaxSize", "before": "5", "after": "7"}],
        "ServiceScalableTarget": [{"path": "Properties.MaxCapacity", "before": 4, "after": 6}],
    }
    code, out = run(repo, "deploy", "--environment", "prod")
    assert code == 0, out
    assert "updated" in out

    # One image moves forward, then the environment rolls back to exactly what ran before.
    code, before = run(repo, "status", "--environment", "prod", "--format", "json")
    assert code == 0
    (repo / "before.json").write_text(before, encoding="utf-8")
    code, out = run(repo, "deploy", "--environment", "prod", "--image-tag", f"vllm={VLLM_NEXT}")
    assert code == 0, out

    def tags(stack: str) -> dict[str, str]:
        params = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
        return {
            p["ParameterKey"]: p["ParameterValue"] for p in params if p["ParameterKey"].endswith("ImageTag")
        }

    assert tags("prod-llama-3-1-8b") == {"VllmImageTag": VLLM_NEXT}
    assert tags("prod-multimodal-api") == {"GatewayImageTag": "abc123"}
    recorded = json.loads(before)["stacks"]
    llama = next(s for s in recorded if s["stack_name"] == "prod-llama-3-1-8b")
    assert llama["parameters"]["VllmImageTag"] == VLLM
    # Redeploying those recorded tags is asserted against the Stubber (test_aws_stack_states): moto keeps
    # a stack's first parameter values for its change-set diff, so it answers "no updates" to a rollback.

    # A deployment comes and goes: the plan deletes its stack, and --prune removes only that one of ours.
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    scratch = repo / "deployments/dev/scratch.yaml"
    scratch.write_text(
        "name: scratch\nmodel: {id: gpt-4o-mini}\n"
        "engine: {type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}\n"
        f"compute: {{service: ecs-fargate}}\nnetwork: {{vpc: {vpc}, private_subnets: [{', '.join(subnets)}],"
        " allowed_cidrs: [10.0.0.0/8]}\n",
        encoding="utf-8",
    )
    code, out = run(repo, "deploy", "--environment", "dev", *TAGS)
    assert code == 0, out
    assert "dev-scratch" in out and "created" in out
    topic = json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    cfn.create_stack(StackName="dev-not-ours", TemplateBody=topic)

    def tags(**values: str) -> list[dict[str, str]]:
        return [{"Key": f"deployctl:{k}", "Value": v} for k, v in values.items()]

    # Issue 14 #1: another repository's deployctl stack in dev, and an orphan of ours in staging.
    cfn.create_stack(StackName="dev-their-model", TemplateBody=topic, Tags=tags(
        **{"managed-by": "deployctl", "repository": "someone/else", "environment": "dev",
           "file": "deployments/dev/their-model.yaml"}))  # fmt: skip
    cfn.create_stack(StackName="staging-old", TemplateBody=topic, Tags=tags(
        **{"managed-by": "deployctl", "repository": "acme/models", "environment": "staging",
           "file": "deployments/staging/old.yaml"}))  # fmt: skip
    scratch.unlink()
    assert actions(plan_json(repo, "--against", "aws"))["dev-scratch"] == "delete"
    code, out = run(repo, "deploy", "--environment", "dev", "--prune")
    assert code == 0, out
    assert "prune: 1 stack(s) of acme/models to delete:" in out and "dev-scratch (us-east-1)" in out
    names = {s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"}
    assert "dev-scratch" not in names
    assert {"dev-not-ours", "dev-their-model", "staging-old", "dev-mistral-7b", "prod-llama-3-1-8b"} <= names
