"""Bootstrap in the emulator: two accounts, two regions, an adopted OIDC provider, a failed run resumed.

moto keeps one set of resources per account id; credentials reach another account the way an
administrator's do, through STS AssumeRole into it (moto attributes the returned keys to the role's
account). moto stores ECR replication configurations and registry policies but copies no image, so the
tests put the image where replication would (and say so) and check the configuration that AWS acts on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from tests.aws.conftest import MOTO_ACCOUNT
from tooling import aws
from tooling.cli import cli

pytestmark = pytest.mark.slow
PROD = "222222222222"
CI_REGION = "us-east-1"
ENVIRONMENTS = f"""\
github_repository: acme/models
ci: {{account_id: "{MOTO_ACCOUNT}", region: {CI_REGION}}}
environments:
  dev: {{account_id: "{MOTO_ACCOUNT}", regions: [us-east-1]}}
  prod: {{account_id: "{PROD}", regions: [us-east-1, eu-west-1], required_reviewers: true}}
"""
SPEC = """\
name: {name}
owner: team@example.com
region: {region}
model: {{id: gpt-4o-mini}}
engine: {{type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}}
compute: {{service: ecs-fargate}}
network: {{public: false}}
"""
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
     "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                "digest": "sha256:" + "a" * 64}, "layers": []}
)  # fmt: skip


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def root(tmp_path: Path, aws_env: str) -> Path:
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/prod").mkdir(parents=True)
    (tmp_path / "deployments/environments.yaml").write_text(ENVIRONMENTS, encoding="utf-8")
    (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC.format(name="chat", region="us-east-1"))
    (tmp_path / "deployments/prod/chat-us.yaml").write_text(SPEC.format(name="chat-us", region="us-east-1"))
    (tmp_path / "deployments/prod/chat-eu.yaml").write_text(SPEC.format(name="chat-eu", region="eu-west-1"))
    return tmp_path


@contextmanager
def account(number: str) -> Iterator[boto3.session.Session]:
    """Credentials of another account, as an administrator gets them: AssumeRole into it."""
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    creds = boto3.client("sts", region_name=CI_REGION).assume_role(
        RoleArn=f"arn:aws:iam::{number}:role/OrganizationAccountAccessRole", RoleSessionName="admin"
    )["Credentials"]
    os.environ.update(
        AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
        AWS_SESSION_TOKEN=creds["SessionToken"],
    )
    aws.reset()
    try:
        yield boto3.session.Session()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        aws.reset()


def push(session: boto3.session.Session, region: str, tag: str) -> None:
    session.client("ecr", region_name=region).put_image(
        repositoryName="deployctl/gateway", imageManifest=MANIFEST, imageTag=tag
    )


def stacks(session: boto3.session.Session, region: str) -> dict[str, str]:
    listed = session.client("cloudformation", region_name=region).describe_stacks()["Stacks"]
    return {s["StackName"]: s["StackStatus"] for s in listed if s["StackStatus"] != "DELETE_COMPLETE"}


def test_two_accounts_two_regions_bootstrap_and_deploy(root: Path) -> None:
    ci = boto3.session.Session()
    # The CI (and dev) account: its regional stack, its account stack with the push role, replication.
    code, out = run(root, "bootstrap")
    assert code == 0, out
    assert f"account {MOTO_ACCOUNT}:" in out
    assert "cost allocation tag deployctl:stack: not activated yet (TagKeysNotFoundException" in out
    assert stacks(ci, "us-east-1") == {
        "deployctl-bootstrap": "CREATE_COMPLETE",
        "deployctl-account": "CREATE_COMPLETE",
    }
    registry = ci.client("ecr", region_name=CI_REGION).describe_registry()["replicationConfiguration"]
    assert registry == {
        "rules": [
            {
                "destinations": [
                    {"region": "eu-west-1", "registryId": PROD},
                    {"region": "us-east-1", "registryId": PROD},
                ],
                "repositoryFilters": [{"filter": "deployctl", "filterType": "PREFIX_MATCH"}],
            }
        ]
    }
    iam = ci.client("iam", region_name=CI_REGION)
    push_role = iam.get_role(RoleName="deployctl-image-push")["Role"]
    assert push_role["Path"] == "/deployctl/"
    assert "deployctl-deploy-prod" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}

    with account(PROD) as prod:
        # This account already has GitHub's OIDC provider (another tool made it): bootstrap adopts it.
        existing = prod.client("iam", region_name=CI_REGION).create_open_id_connect_provider(
            Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"],
            ThumbprintList=["6938fd4d98bab03faadb97b34396831e3780aea1"],
        )["OpenIDConnectProviderArn"]  # fmt: skip
        code, out = run(root, "bootstrap")
        assert code == 0, out
        assert f"adopting {existing}" in out
        for region in ("us-east-1", "eu-west-1"):
            assert stacks(prod, region)["deployctl-bootstrap"] == "CREATE_COMPLETE", region
            policy = json.loads(prod.client("ecr", region_name=region).get_registry_policy()["policyText"])
            (statement,) = policy["Statement"]
            assert statement["Principal"] == {"AWS": f"arn:aws:iam::{MOTO_ACCOUNT}:root"}
            assert statement["Action"] == ["ecr:CreateRepository", "ecr:ReplicateImage"]
            assert statement["Resource"] == f"arn:aws:ecr:{region}:{PROD}:repository/deployctl/*"
        prod_iam = prod.client("iam", region_name=CI_REGION)
        providers = prod_iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        assert [p["Arn"] for p in providers] == [existing]
        deploy_role = prod_iam.get_role(RoleName="deployctl-deploy-prod")["Role"]
        assert deploy_role["MaxSessionDuration"] == 5400
        (trust,) = deploy_role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Federated": existing}
        assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
            "repo:acme/models:environment:prod"
        )

        # Running it again changes nothing.
        code, out = run(root, "bootstrap")
        assert code == 0, out
        assert out.count("is up to date") == 3, out

        # The image is in us-east-1 only (as if replication had reached one region so far): the
        # eu-west-1 stack fails before any change, the other is created.
        push(prod, "us-east-1", "v1")
        code, out = run(root, "deploy", "--environment", "prod", "--image-tag", "v1", "--image-wait", "0")
        assert code == 1, out
        assert "deployctl/gateway:v1 is not in eu-west-1's ECR repository" in out.replace("\n", " ")
        assert stacks(prod, "us-east-1")["prod-chat-us"] == "CREATE_COMPLETE"
        assert "prod-chat-eu" not in stacks(prod, "eu-west-1")
        push(prod, "eu-west-1", "v1")  # what ECR replication does, which moto does not
        code, out = run(root, "deploy", "--environment", "prod", "--image-tag", "v1")
        assert code == 0, out
        assert stacks(prod, "eu-west-1")["prod-chat-eu"] == "CREATE_COMPLETE"
        # The emulator answers as AWS does for a tag not yet in billing data: the deploy says it retries.
        assert "cost allocation tag deployctl:stack: not activated yet" in out
        assert "the next bootstrap or deploy tries again" in out.replace("\n", " ")
        cfn = prod.client("cloudformation", region_name="eu-west-1")
        assert cfn.describe_stacks(StackName="prod-chat-eu")["Stacks"][0]["EnableTerminationProtection"]

    # The CI account's credentials cannot deploy prod: environments.yaml puts it in another account.
    push(ci, "us-east-1", "v1")
    code, out = run(root, "deploy", "--environment", "prod", "--image-tag", "v1")
    assert code == 1
    assert f"environments.yaml puts prod in {PROD}" in out.replace("\n", " ")
    assert "prod-chat-us" not in stacks(ci, "us-east-1")
    # ... and dev deploys where it lives.
    code, out = run(root, "deploy", "--environment", "dev", "--image-tag", "v1")
    assert code == 0, out


def test_a_failed_bootstrap_runs_again_to_completion(root: Path) -> None:
    iam = boto3.client("iam", region_name=CI_REGION)
    # A role of ours already exists outside the stack: the account stack fails and rolls back.
    iam.create_role(RoleName="deployctl-deploy-dev", Path="/deployctl/", AssumeRolePolicyDocument="{}")
    code, out = run(root, "bootstrap")
    assert code == 1, out
    status = stacks(boto3.session.Session(), "us-east-1")
    assert status["deployctl-bootstrap"] == "CREATE_COMPLETE"
    assert status["deployctl-account"] in ("ROLLBACK_COMPLETE", "CREATE_FAILED"), status
    iam.delete_role(RoleName="deployctl-deploy-dev")
    code, out = run(root, "bootstrap")
    assert code == 0, out
    assert "a failed create): deleting it to create again" in out
    assert stacks(boto3.session.Session(), "us-east-1")["deployctl-account"] == "CREATE_COMPLETE"


def test_an_existing_repository_is_used_unmanaged(root: Path) -> None:
    ecr = boto3.client("ecr", region_name=CI_REGION)
    ecr.create_repository(repositoryName="deployctl/vllm")
    code, out = run(root, "bootstrap")
    assert code == 0, out
    assert "VllmRepository exists outside the bootstrap stack; using it as it is, unmanaged" in out
    resources = boto3.client("cloudformation", region_name=CI_REGION).list_stack_resources(
        StackName="deployctl-bootstrap"
    )["StackResourceSummaries"]
    managed = {r["LogicalResourceId"] for r in resources if r["LogicalResourceId"]}
    assert {"ArtifactsBucket", "GatewayRepository"} <= managed
    assert "VllmRepository" not in managed


def test_bootstrap_refuses_an_account_environments_yaml_does_not_use(root: Path) -> None:
    with account("999999999999"):
        code, out = run(root, "bootstrap")
    assert code == 1
    assert "account 999999999999, which environments.yaml does not use" in out
