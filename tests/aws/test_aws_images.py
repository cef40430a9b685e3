"""A deployment merged alone deploys with the checkout's images; a version bump moves to that version's.

Issue 12, point 1: merging deployments/prod/foo.yaml without an image rebuild ran deploy with no tag and
failed with MissingParameter VllmImageTag, while the plan said create. Now deploy sets the tags the
checkout names (`deployctl images`), and the plan shows those same tags.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from tests.aws.conftest import ROOT, git
from tests.aws.test_aws_end_to_end import MANIFEST
from tooling import aws, changesets, cloudformation
from tooling.cli import cli
from tooling.snapshot import StackState

pytestmark = pytest.mark.slow

PROXY = """name: proxy
owner: team@example.com
region: us-east-1
model: {{id: gpt-4o}}
engine: {{type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}}
compute: {{service: ecs-fargate}}
network: {{vpc: {vpc}, private_subnets: [{subnets}], allowed_cidrs: [10.0.0.0/8]}}
"""
# In an existing VPC: moto's CloudFormation does not delete NAT gateways or VPC endpoints.
FOO = """name: foo
owner: team@example.com
region: us-east-1
model: {{id: meta-llama/Llama-3.1-8B-Instruct}}
engine: {{type: vllm, version: "0.34.0"}}
compute: {{service: ecs-gpu, instance_type: g5.xlarge}}
network: {{vpc: {vpc}, private_subnets: [{subnets}], allowed_cidrs: [10.0.0.0/8]}}
"""


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(repo), *args], catch_exceptions=False)
    return result.exit_code, result.output


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def missing(repo: Path) -> list[dict]:
    code, out = run(repo, "images", "--missing", "--region", "us-east-1", "--format", "json")
    assert code == 0, out
    return json.loads(out)["images"]


def push(images: list[dict]) -> None:
    """What CI's build jobs do with `deployctl images --missing` (one account is the CI registry here)."""
    ecr = boto3.client("ecr", region_name="us-east-1")
    for image in images:
        ecr.put_image(repositoryName=image["repository"], imageManifest=MANIFEST, imageTag=image["tag"])


def parameters(stack: str) -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    listed = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    return {p["ParameterKey"]: p["ParameterValue"] for p in listed if p["ParameterKey"].endswith("ImageTag")}


def test_a_deployment_merged_alone_deploys_with_the_checkouts_images(tmp_path: Path, aws_env: str) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = ", ".join(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
    )
    shutil.copytree(ROOT / "inference_server", tmp_path / "inference_server")
    shutil.copy(ROOT / "Dockerfile.vllm", tmp_path / "Dockerfile.vllm")
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/proxy.yaml").write_text(PROXY.format(vpc=vpc, subnets=subnets))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "remote", "add", "origin", "https://github.com/acme/models.git")
    built = commit(tmp_path, "the gateway, Dockerfile.vllm and one deployment")
    ecr = boto3.client("ecr", region_name="us-east-1")
    for repository in ("deployctl/gateway", "deployctl/vllm"):  # what bootstrap makes
        ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    # ... and its artifacts bucket, for templates over the inline limit (the GPU stack is one).
    boto3.client("s3", region_name="us-east-1").create_bucket(
        Bucket=cloudformation.artifacts_bucket(aws.account_id("us-east-1"), "us-east-1")
    )

    # CI builds what the checkout's deployments need and is not pushed yet; a re-run finds nothing.
    (gateway,) = missing(tmp_path)
    assert (gateway["repository"], gateway["tag"]) == ("deployctl/gateway", built)
    push([gateway])
    assert missing(tmp_path) == []
    code, out = run(tmp_path, "deploy", "--image-wait", "0")  # no --image-tag: the checkout's
    assert code == 0, out
    assert parameters("dev-proxy") == {"GatewayImageTag": built}

    # foo.yaml is merged alone: no image input changed, so the tags are the ones built above.
    (tmp_path / "deployments/prod").mkdir()
    (tmp_path / "deployments/prod/foo.yaml").write_text(FOO.format(vpc=vpc, subnets=subnets))
    commit(tmp_path, "foo")
    code, reviewed = run(tmp_path, "plan", "--against", "git:HEAD~1", "--format", "json")
    assert code == 0, reviewed
    (planned,) = [s for s in json.loads(reviewed)["stacks"] if s["action"] == "create"]
    assert planned["stack_name"] == "prod-foo"
    assert planned["image_tags"] == {"VllmImageTag": f"0.34.0-{built}"}
    (tmp_path / "reviewed.json").write_text(reviewed, encoding="utf-8")

    # A plan against AWS shows the same tags for the stack it would create.
    code, out = run(tmp_path, "plan", "--against", "aws", "--format", "json")
    assert code in (0, 2), out
    (created,) = [s for s in json.loads(out)["stacks"] if s["action"] == "create"]
    assert (created["stack_name"], created["image_tags"]) == ("prod-foo", planned["image_tags"])

    # No vLLM 0.34.0 image was ever built: deploy says so and changes nothing.
    code, out = run(tmp_path, "deploy", "--plan", str(tmp_path / "reviewed.json"), "--image-wait", "0")
    assert code == 1
    assert f"deployctl/vllm:0.34.0-{built} is not in us-east-1's ECR repository" in out.replace("\n", " ")
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    assert "prod-foo" not in {s["StackName"] for s in cfn.describe_stacks()["Stacks"]}
    (vllm,) = missing(tmp_path)
    assert vllm["tag"] == f"0.34.0-{built}" and vllm["build_args"]["VLLM_VERSION"] == "0.34.0"
    push([vllm])

    # What was reviewed is what is applied: the deploy bound to the plan creates it with those tags.
    code, out = run(tmp_path, "deploy", "--plan", str(tmp_path / "reviewed.json"), "--image-wait", "0")
    assert code == 0, out
    assert "prod-foo" in out and "created" in out
    assert parameters("prod-foo") == planned["image_tags"]
    code, out = run(tmp_path, "deploy", "--image-wait", "0")
    assert code == 0, out
    assert out.count("unchanged") == 2

    # The gateway (in both images) changes after the review: the reviewed tags are no longer the
    # checkout's, and the deploy bound to that review refuses instead of running other images.
    (tmp_path / "inference_server/app.py").write_text("# changed\n", encoding="utf-8")
    newer = commit(tmp_path, "the gateway changes")
    code, out = run(tmp_path, "deploy", "--plan", str(tmp_path / "reviewed.json"))
    assert code == 1
    assert "prod-foo: differs from the reviewed plan in its image tags" in out.replace("\n", " ")
    rebuilt = missing(tmp_path)
    assert {i["tag"] for i in rebuilt} == {newer, f"0.34.0-{newer}"}
    # Without --checkout-images every stack keeps what it runs; with it, every stack moves to the
    # images CI just built.
    push(rebuilt)
    code, out = run(tmp_path, "deploy", "--image-wait", "0")
    assert code == 0 and out.count("unchanged") == 2, out
    code, out = run(tmp_path, "deploy", "--checkout-images", "--image-wait", "0")
    assert code == 0, out
    assert parameters("dev-proxy") == {"GatewayImageTag": newer}
    assert parameters("prod-foo") == {"VllmImageTag": f"0.34.0-{newer}"}


def _state(pattern: str, version: str = "0.34.0") -> StackState:
    text = json.dumps({"Parameters": {"VllmImageTag": {"Type": "String", "AllowedPattern": pattern}}})
    return StackState("prod", "foo", "deployments/prod/foo.yaml", "us-east-1", text, vllm_version=version)


NEW = r"^0\.34\.0-[0-9a-f]{40}$"
OLD_TAG = "0.31.0-" + "a" * 40
NEW_TAG = "0.34.0-" + "b" * 40


def _deployed(tag: str) -> dict:
    return {"Parameters": [{"ParameterKey": "VllmImageTag", "ParameterValue": tag}]}


def test_a_version_bump_sets_the_new_versions_image() -> None:
    """What deploy sends for VllmImageTag, given the deployed stack and the checkout (no AWS call)."""
    state = _state(NEW)
    checkout = {"VllmImageTag": NEW_TAG}
    # Same version: the stack keeps the image it runs.
    assert changesets.parameters(state, _deployed("0.34.0-" + "c" * 40), None, checkout) == [
        {"ParameterKey": "VllmImageTag", "UsePreviousValue": True}
    ]
    # engine.version moved from 0.31.0: the deployed tag no longer fits, the checkout's does.
    assert changesets.parameters(state, _deployed(OLD_TAG), None, checkout) == [
        {"ParameterKey": "VllmImageTag", "ParameterValue": NEW_TAG}
    ]
    # ... and without a checkout to name one, deploy says what to do instead of failing in CloudFormation.
    with pytest.raises(changesets.MissingParameter, match=r"engine.version changed\?"):
        changesets.parameters(state, _deployed(OLD_TAG), None, None)
    # A given tag of another version is refused before any change set (CloudFormation would refuse it).
    with pytest.raises(changesets.BadImageTag, match=r"'0.31.0-a+' does not match \^0\\.34\\.0"):
        changesets.parameters(state, None, {"VllmImageTag": OLD_TAG}, checkout)
    assert changesets.parameters(state, None, None, checkout) == [
        {"ParameterKey": "VllmImageTag", "ParameterValue": NEW_TAG}
    ]


def test_missing_asks_the_registry_for_each_versions_tag(aws_env: str) -> None:
    """Several vLLM versions share deployctl/vllm: each (repository, tag) is its own DescribeImages."""
    from tooling.accounts import images as registry

    ecr = boto3.client("ecr", region_name="us-east-1")
    ecr.create_repository(repositoryName="deployctl/vllm", imageTagMutability="IMMUTABLE")
    ecr.put_image(repositoryName="deployctl/vllm", imageManifest=MANIFEST, imageTag=NEW_TAG)
    wanted = [("deployctl/vllm", NEW_TAG), ("deployctl/vllm", OLD_TAG), ("deployctl/gateway", "abc")]
    # Not pushed, and a repository bootstrap has not made yet: both absent, neither an error.
    assert registry.absent("us-east-1", wanted) == [("deployctl/vllm", OLD_TAG), ("deployctl/gateway", "abc")]
    assert registry.missing("us-east-1", {"deployctl/vllm": NEW_TAG}) == []
