"""The account stack's trust and permission policies, as data: every statement, every condition.

Each role is checked twice: its statements against the exact list we mean (so an added action fails a
test), and its behaviour through tests/accounts/policies.py, which evaluates the documents with IAM's
logic (no IAM policy simulator is available offline; see that module).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from templates import bootstrap
from templates.iam import BOUNDARY_POLICY, ROLE_PATH
from templates.stack import render
from tests.accounts.policies import ACCOUNT, allowed, plain, size, trusts

ENVIRONMENTS = ("dev", "prod")
REPO = "acme/models"
AUD = "token.actions.githubusercontent.com:aud"
SUB = "token.actions.githubusercontent.com:sub"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
EXECUTION = f"arn:aws:iam::{ACCOUNT}:role/deployctl/deployctl-cloudformation-execution"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/deployctl/{BOUNDARY_POLICY}"


def stack(region: str = "us-east-1") -> dict[str, Any]:
    text = render(bootstrap.build_account(ENVIRONMENTS, REPO, ci_registry=True, ci_region="us-east-1"))
    return plain(json.loads(text)["Resources"], region, {"GitHubOidcProvider": PROVIDER})


RESOURCES = stack()


def role(environment: str, kind: str) -> dict[str, Any]:
    return RESOURCES[f"{environment.capitalize()}{kind.capitalize()}Role"]["Properties"]


def documents(props: dict[str, Any]) -> list[dict]:
    """A role's inline documents and the managed policies of this stack it attaches."""
    docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
    for arn in props.get("ManagedPolicyArns", []):
        logical = arn.removeprefix("ref:")
        docs.append(RESOURCES[logical]["Properties"]["PolicyDocument"])
    return docs


def actions(props: dict[str, Any]) -> set[str]:
    return {
        a for d in documents(props) for s in d["Statement"] if s["Effect"] == "Allow" for a in s["Action"]
    }


def stack_arn(name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{name}/0f6c0a50-1234"


def token(sub: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
    return {SUB: sub, AUD: aud}


# ---------------------------------------------------------------------- trust


SUBJECTS = {
    "plan": "pull_request",
    "deploy": "environment:{env}",
    "smoke": "ref:refs/heads/main",
    "rotation": "ref:refs/heads/main",
    "drift": "ref:refs/heads/main",
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("kind", sorted(SUBJECTS))
def test_each_github_role_trusts_exactly_one_subject_of_this_repository(environment: str, kind: str) -> None:
    props = role(environment, kind)
    assert props["RoleName"] == f"deployctl-{kind}-{environment}"
    assert props["Path"] == ROLE_PATH
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    subject = f"repo:{REPO}:{SUBJECTS[kind].format(env=environment)}"
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {AUD: "sts.amazonaws.com", SUB: subject}},
    }
    assert "*" not in json.dumps(statement["Condition"])


def test_the_prod_deploy_role_answers_only_the_prod_environment() -> None:
    trust = role("prod", "deploy")["AssumeRolePolicyDocument"]
    federated = {"Federated": PROVIDER}
    action = "sts:AssumeRoleWithWebIdentity"
    assert trusts(trust, action, federated, token(f"repo:{REPO}:environment:prod"))
    for refused in (
        f"repo:{REPO}:environment:dev",
        f"repo:{REPO}:environment:prod-copy",
        f"repo:{REPO}:environment:*",
        f"repo:{REPO}:ref:refs/heads/main",
        f"repo:{REPO}:ref:refs/heads/feature",
        f"repo:{REPO}:pull_request",
        "repo:someone/fork:environment:prod",
    ):
        assert not trusts(trust, action, federated, token(refused)), refused
    assert not trusts(trust, action, federated, token(f"repo:{REPO}:environment:prod", aud="other"))
    assert not trusts(
        trust,
        action,
        {"Federated": "arn:aws:iam::999999999999:oidc-provider/x"},
        token(f"repo:{REPO}:environment:prod"),
    )


def test_the_execution_role_is_for_cloudformation_of_this_account_only() -> None:
    props = RESOURCES["CloudFormationExecutionRole"]["Properties"]
    assert props["Path"] == ROLE_PATH
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }


def test_the_push_role_trusts_main_only() -> None:
    props = RESOURCES["ImagePushRole"]["Properties"]
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {AUD: "sts.amazonaws.com", SUB: f"repo:{REPO}:ref:refs/heads/main"}
    }
    assert actions(props) == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:CompleteLayerUpload",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:GetDownloadUrlForLayer",
    }
    docs = documents(props)
    ci_repo = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/deployctl/vllm"
    assert allowed(docs, "ecr:PutImage", ci_repo)
    assert not allowed(docs, "ecr:PutImage", f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/deployctl/vllm")
    assert not allowed(docs, "ecr:PutImage", f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/other")


# ---------------------------------------------------------------------- permissions, role by role

PLAN = {
    "cloudformation:DescribeStacks",
    "cloudformation:ListStacks",
    "sts:GetCallerIdentity",
    "ecr:DescribeImages",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:DescribeStackEvents",
    "cloudformation:GetTemplate",
    "cloudformation:CreateChangeSet",
    "cloudformation:TagResource",
    "cloudformation:ListStackResources",
    "cloudformation:DeleteStack",
    "acm:DescribeCertificate",
    "ssm:GetParameters",
    "budgets:ViewBudget",
    "s3:PutObject",
    "s3:GetObject",
}
# The quota preflight of plans and deploys (tooling/quotas.py).
QUOTA_READS = {
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
    "servicequotas:ListServiceQuotas",
    "servicequotas:ListAWSDefaultServiceQuotas",
    "cloudwatch:GetMetricData",
    "ec2:DescribeInstances",
    "sagemaker:ListEndpoints",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
}
PLAN |= QUOTA_READS
DEPLOY = {
    "cloudformation:DescribeStacks",
    "cloudformation:ListStacks",
    "sts:GetCallerIdentity",
    "ecr:DescribeImages",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteStack",
    "cloudformation:DescribeStackEvents",
    "cloudformation:GetTemplate",
    "cloudformation:ContinueUpdateRollback",
    "cloudformation:UpdateTerminationProtection",
    "cloudformation:ListStackResources",
    "cloudformation:TagResource",
    "cloudformation:UntagResource",
    "cloudformation:ValidateTemplate",
    "acm:DescribeCertificate",
    "iam:PassRole",
    "ssm:GetParameters",
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "ce:UpdateCostAllocationTagsStatus",
    *QUOTA_READS,
    "lambda:InvokeFunction",
    "lambda:GetFunction",
}
KEYS = {
    "cloudformation:DescribeStacks",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
}
SMOKE = KEYS | {"lambda:InvokeFunction", "lambda:GetFunction"}
# rotate-keys.yml smoke-tests with the new key as the rotation role: it may do what the smoke role does.
ROTATION = SMOKE | {"secretsmanager:RotateSecret"}
DRIFT_OWN = {
    "cloudformation:DetectStackDrift",
    "cloudformation:DetectStackResourceDrift",
    "cloudformation:DescribeStackResourceDrifts",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackDriftDetectionStatus",
    "cloudformation:ListStacks",
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    # A release smoke-tests with the deploy role: it may do all the smoke role may.
    [("plan", PLAN), ("deploy", DEPLOY | SMOKE), ("smoke", SMOKE), ("rotation", ROTATION)],
)
def test_each_role_has_exactly_its_actions(kind: str, expected: set[str]) -> None:
    for environment in ENVIRONMENTS:
        assert actions(role(environment, kind)) == expected


def test_the_plan_role_deletes_only_its_own_review_shells() -> None:
    docs = documents(role("dev", "plan"))
    shell = {"aws:ResourceTag/deployctl:template-hash": "plan"}
    deployed = {"aws:ResourceTag/deployctl:template-hash": "3f2a9c0d1b"}
    assert allowed(docs, "cloudformation:DeleteStack", stack_arn("dev-chat"), shell)
    assert not allowed(docs, "cloudformation:DeleteStack", stack_arn("dev-chat"), deployed)
    assert not allowed(docs, "cloudformation:DeleteStack", stack_arn("dev-chat"), {})
    assert not allowed(docs, "cloudformation:DeleteStack", stack_arn("prod-chat"), shell)
    assert not allowed(docs, "cloudformation:DeleteStack", stack_arn("deployctl-bootstrap"), shell)
    # Its change sets carry the plan tag, so the shells they create do too; it can execute none.
    named = {"cloudformation:ChangeSetName": "deployctl-plan-0a1b2c3d4e5f"}
    plan_tag = {"aws:RequestTag/deployctl:template-hash": "plan", **named}
    assert allowed(docs, "cloudformation:CreateChangeSet", stack_arn("dev-chat"), plan_tag)
    assert not allowed(docs, "cloudformation:CreateChangeSet", stack_arn("dev-chat"), named)
    deploy_named = {**plan_tag, "cloudformation:ChangeSetName": "deployctl-0a1b2c3d4e5f"}
    assert not allowed(docs, "cloudformation:CreateChangeSet", stack_arn("dev-chat"), deploy_named)
    assert not allowed(docs, "cloudformation:ExecuteChangeSet", stack_arn("dev-chat"))
    assert not allowed(docs, "iam:PassRole", EXECUTION)
    assert not allowed(
        docs,
        "secretsmanager:GetSecretValue",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:deployctl/dev/chat/api-key-AbCdEf",
    )


def test_the_plan_tag_is_what_plans_put_on_their_change_sets() -> None:
    from tooling.changesets import stack_tags
    from tooling.snapshot import StackState

    tags = stack_tags(StackState("dev", "chat", "x.yaml", "us-east-1", "{}"), "plan", repository=REPO)
    assert tags[bootstrap.PLAN_TAG] == bootstrap.PLAN_TAG_VALUE
    # ... and the names the plan role's change-set conditions expect (deploys' never match them).
    import inspect

    from tooling import changesets, deploy

    assert 'f"deployctl-plan-{uuid.uuid4().hex[:12]}"' in inspect.getsource(changesets)
    assert 'f"deployctl-{uuid.uuid4().hex[:12]}"' in inspect.getsource(deploy)
    assert bootstrap.PLAN_CHANGE_SETS == "deployctl-plan-*"


def test_the_deploy_role_drives_only_its_environment_and_passes_only_the_execution_role() -> None:
    docs = documents(role("prod", "deploy"))
    for action in (
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteStack",
        "cloudformation:UpdateTerminationProtection",
    ):
        assert allowed(docs, action, stack_arn("prod-chat", "eu-west-1"))
        assert not allowed(docs, action, stack_arn("dev-chat"))
        assert not allowed(docs, action, stack_arn("deployctl-bootstrap"))
    passed = {"iam:PassedToService": "cloudformation.amazonaws.com"}
    assert allowed(docs, "iam:PassRole", EXECUTION, passed)
    assert not allowed(docs, "iam:PassRole", EXECUTION, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(
        docs, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/deployctl/deployctl-deploy-prod", passed
    )
    assert not allowed(docs, "secretsmanager:GetSecretValue", "*")
    assert not allowed(docs, "ecr:PutImage", "*")


@pytest.mark.parametrize("kind", ["smoke", "rotation"])
def test_keys_only_of_its_environment_and_kms_only_through_secrets_manager(kind: str) -> None:
    docs = documents(role("prod", kind))
    secret = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:deployctl/prod/chat/api-key-AbCdEf"
    other = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:deployctl/dev/chat/api-key-AbCdEf"
    provider_key = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:team/openai-AbCdEf"
    assert allowed(docs, "secretsmanager:GetSecretValue", secret)
    assert not allowed(docs, "secretsmanager:GetSecretValue", other)
    assert not allowed(docs, "secretsmanager:GetSecretValue", provider_key)
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    via = {
        "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
        "aws:ResourceTag/deployctl:environment": "prod",
    }
    assert allowed(docs, "kms:Decrypt", key, via)
    assert not allowed(docs, "kms:Decrypt", key, {**via, "kms:ViaService": "s3.eu-west-1.amazonaws.com"})
    assert not allowed(docs, "kms:Decrypt", key, {"aws:ResourceTag/deployctl:environment": "prod"})
    assert not allowed(docs, "kms:Decrypt", key, {**via, "aws:ResourceTag/deployctl:environment": "dev"})
    (kms,) = [s for d in docs for s in d["Statement"] if "kms:Decrypt" in s["Action"]]
    assert kms["Condition"] == {
        "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"},
        "StringEquals": {"aws:ResourceTag/deployctl:environment": "prod"},
    }
    rotate = allowed(docs, "secretsmanager:RotateSecret", secret)
    invoke = allowed(
        docs,
        "lambda:InvokeFunction",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:prod-chat-RotationFunction-x1",
    )
    assert rotate == invoke == (kind == "rotation")
    assert not allowed(
        docs,
        "lambda:InvokeFunction",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:dev-chat-RotationFunction-x1",
    )
    assert not allowed(docs, "cloudformation:DescribeStacks", stack_arn("dev-chat"))


def _function(stack: str, logical: str, region: str = "eu-west-1") -> str:
    # CloudFormation names a function `<stack>-<logical id>-<random>`.
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{stack}-{logical}-a1B2c3D4e5F6"


@pytest.mark.parametrize("kind", ["smoke", "deploy"])
def test_smoke_and_deploy_roles_invoke_only_their_environments_probes(kind: str) -> None:
    from templates import smoke_probe

    docs = documents(role("prod", kind))
    probe = {
        f"aws:ResourceTag/{smoke_probe.ROLE_TAG}": smoke_probe.ROLE_TAG_VALUE,
        "aws:ResourceTag/deployctl:environment": "prod",
    }
    for action in ("lambda:InvokeFunction", "lambda:GetFunction"):
        assert allowed(docs, action, _function("prod-chat", "SmokeProbeFunction"), probe)
        # Another environment's probe, by its name or by its tags.
        assert not allowed(docs, action, _function("dev-chat", "SmokeProbeFunction"), probe)
        dev_tags = {**probe, "aws:ResourceTag/deployctl:environment": "dev"}
        assert not allowed(docs, action, _function("prod-chat", "SmokeProbeFunction"), dev_tags)
        # A function of our stacks that is not a probe (rotation, host cleanup), or anyone's function.
        rotation_tags = {"aws:ResourceTag/deployctl:environment": "prod"}
        assert not allowed(docs, action, _function("prod-chat", "RotationFunction"), rotation_tags)
        assert not allowed(docs, action, _function("prod-chat", "SmokeProbeFunction"), {})
        assert not allowed(docs, action, f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:billing", probe)
    assert not allowed(docs, "lambda:UpdateFunctionCode", _function("prod-chat", "SmokeProbeFunction"), probe)


def test_the_probe_tags_the_roles_expect_are_on_every_probe(built: dict[str, Any]) -> None:
    from templates import smoke_probe

    probes = [
        (name, item.resources[smoke_probe.FUNCTION])
        for name, item in built.items()
        if smoke_probe.FUNCTION in item.resources
    ]
    assert probes
    for name, function in probes:
        tags = {t["Key"]: t["Value"] for t in function["Properties"]["Tags"]}
        assert tags[smoke_probe.ROLE_TAG] == smoke_probe.ROLE_TAG_VALUE, name
        assert tags["deployctl:environment"] == name.split("-")[0], name


def test_the_drift_role_detects_drift_and_reads_what_detection_reads() -> None:
    props = role("dev", "drift")
    assert actions(props) >= DRIFT_OWN
    assert actions(props) - DRIFT_OWN == {*bootstrap.drift_actions(), *bootstrap.DRIFT_PARAMETER_ACTIONS}
    docs = documents(props)
    # Parameters only under our path: never an account's other (SecureString) parameters.
    assert allowed(
        docs, "ssm:GetParameters", f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/deployctl/dev/chat/clients"
    )
    assert not allowed(docs, "ssm:GetParameters", f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/db/password")
    assert allowed(docs, "cloudformation:DetectStackDrift", stack_arn("dev-chat"))
    assert not allowed(docs, "cloudformation:DetectStackDrift", stack_arn("prod-chat"))
    reads = set(bootstrap.drift_actions())
    # Every read handler of every resource type our stacks use; never a secret's value or a decrypt.
    assert {
        "ecs:DescribeServices",
        "elasticloadbalancing:DescribeLoadBalancers",
        "iam:GetRole",
        "sagemaker:DescribeEndpoint",
        "secretsmanager:DescribeSecret",
    } <= reads
    assert "secretsmanager:GetSecretValue" not in reads
    assert not any(a.startswith("kms:Decrypt") for a in reads)
    assert not any(a.split(":")[1].startswith(("Create", "Delete", "Put", "Update")) for a in reads)


# ---------------------------------------------------------------------- the execution role and boundary


def execution_documents() -> list[dict]:
    return documents(RESOURCES["CloudFormationExecutionRole"]["Properties"])


def test_the_execution_role_creates_roles_only_under_our_path_with_the_boundary() -> None:
    docs = execution_documents()
    ours = f"arn:aws:iam::{ACCOUNT}:role/deployctl/prod-chat-TaskRole-1X2Y"
    with_boundary = {"iam:PermissionsBoundary": BOUNDARY}
    assert allowed(docs, "iam:CreateRole", ours, with_boundary)
    assert not allowed(docs, "iam:CreateRole", ours, {})
    assert not allowed(
        docs,
        "iam:CreateRole",
        ours,
        {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    assert not allowed(
        docs, "iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/prod-chat-TaskRole-1X2Y", with_boundary
    )
    assert allowed(docs, "iam:PutRolePolicy", ours, with_boundary)
    assert not allowed(docs, "iam:PutRolePolicy", ours, {})
    assert allowed(docs, "iam:AttachRolePolicy", ours, with_boundary)
    assert not allowed(docs, "iam:DeleteRolePermissionsBoundary", ours)
    assert allowed(docs, "iam:PassRole", ours, {"iam:PassedToService": "ecs-tasks.amazonaws.com"})
    assert not allowed(docs, "iam:PassRole", ours, {"iam:PassedToService": "cloudformation.amazonaws.com"})
    # Never the bootstrap's own roles and policies, whatever the conditions.
    for arn in (EXECUTION, BOUNDARY, f"arn:aws:iam::{ACCOUNT}:role/deployctl/deployctl-deploy-prod"):
        assert not allowed(docs, "iam:PutRolePolicy", arn, with_boundary)
        assert not allowed(docs, "iam:CreatePolicyVersion", arn)
    assert not allowed(docs, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/x")
    # Roles our stacks made before roles had a path: CloudFormation may delete them, nothing more.
    legacy = f"arn:aws:iam::{ACCOUNT}:role/prod-chat-TaskRole-1X2Y"
    assert allowed(docs, "iam:DeleteRole", legacy)
    assert allowed(docs, "iam:DetachRolePolicy", legacy)
    for action in (
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:UpdateAssumeRolePolicy",
    ):
        assert not allowed(docs, action, legacy, with_boundary), action
    assert not allowed(docs, "iam:DeleteRole", f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole")
    assert not allowed(docs, "iam:DeleteRole", f"arn:aws:iam::{ACCOUNT}:role/staging-chat-TaskRole-1X2Y")
    assert not allowed(docs, "iam:CreatePolicy", f"arn:aws:iam::{ACCOUNT}:policy/x")
    assert allowed(
        docs,
        "iam:CreateServiceLinkedRole",
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
        {"iam:AWSServiceName": "ecs.amazonaws.com"},
    )


def test_the_execution_role_creates_a_mixed_instances_group_from_a_launch_template() -> None:
    """AWS::AutoScaling::AutoScalingGroup's handlers declare their reads only as wildcards
    (`autoscaling:Describe*`, `ec2:Describe*`, ...): without them the create handler cannot read the
    group it made. CreateAutoScalingGroup with a launch template also needs ec2:RunInstances,
    ec2:CreateTags (tags on launch), iam:PassRole (the instance profile's role) and
    iam:CreateServiceLinkedRole (the group's role, first use):
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-api-permissions.html"""
    docs = execution_documents()
    for action in (
        "autoscaling:CreateAutoScalingGroup",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:DeleteAutoScalingGroup",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeScalingActivities",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeImages",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "elasticloadbalancing:DescribeTargetGroups",
    ):
        assert allowed(docs, action, "*"), action
    host_role = f"arn:aws:iam::{ACCOUNT}:role/deployctl/prod-chat-HostRole-1X2Y"
    assert allowed(docs, "iam:PassRole", host_role, {"iam:PassedToService": "ec2.amazonaws.com"})
    for service in ("autoscaling.amazonaws.com", "spot.amazonaws.com"):
        assert allowed(
            docs,
            "iam:CreateServiceLinkedRole",
            f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{service}/x",
            {"iam:AWSServiceName": service},
        ), service
    # Only read wildcards are kept from the schemas: nothing that writes is granted by a pattern.
    patterns = [a for a in bootstrap.execution_actions() if "*" in a]
    assert "autoscaling:Describe*" in patterns
    assert all(a.split(":")[1][:-1] in bootstrap.READ_PREFIXES for a in patterns), patterns
    # ec2:Get* covers one credential read; the execution role is denied it.
    assert allowed(docs, "ec2:GetLaunchTemplateData", "*")
    assert not allowed(docs, "ec2:GetPasswordData", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abc")
    # The drift role reads the group with its own credentials, but never a parameter outside our path.
    drift = documents(role("prod", "drift"))
    assert allowed(drift, "autoscaling:DescribeAutoScalingGroups", "*")
    assert not allowed(drift, "ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/db/password")


def test_read_wildcards_are_kept_only_where_iam_defines_matching_actions() -> None:
    assert bootstrap._read_wildcard("autoscaling", "Describe*")
    assert not bootstrap._read_wildcard("managed-fleets", "Get*")  # a service IAM does not define
    assert not bootstrap._read_wildcard("ec2", "Create*")
    assert not bootstrap._read_wildcard("ec2", "*")
    assert bootstrap.covers("ssm:Get*", "ssm:GetParameters")
    assert not bootstrap.covers("ssm:Get*", "ssm:PutParameter")


def test_the_execution_role_creates_and_deletes_the_smoke_probe_in_its_vpc() -> None:
    """What AWS::Lambda::Function's handlers call for a function with VpcConfig: the subnets, groups
    and VPC are read on create; on delete CloudFormation watches the function's network interfaces
    (ec2:DescribeNetworkInterfaces) until Lambda has removed them, or it would not wait for them."""
    docs = execution_documents()
    probe = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-SmokeProbeFunction-a1B2c3D4e5F6"
    for action in ("lambda:CreateFunction", "lambda:TagResource", "lambda:DeleteFunction"):
        assert allowed(docs, action, probe), action
    for action in ("lambda:CreateFunction", "lambda:DeleteFunction"):
        assert not allowed(docs, action, f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:billing"), action
    for action in (
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "ec2:DescribeNetworkInterfaces",
        "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
    ):
        assert allowed(docs, action, "*"), action
    role = f"arn:aws:iam::{ACCOUNT}:role/deployctl/prod-chat-SmokeProbeRole-1X2Y"
    assert allowed(docs, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})


def test_the_execution_role_may_call_what_the_handlers_of_our_resource_types_call() -> None:
    docs = execution_documents()
    resource_actions = {
        a
        for d in docs
        for s in d["Statement"]
        if s["Effect"] == "Allow" and s["Resource"] == "*"
        for a in s["Action"]
    }
    assert resource_actions == set(bootstrap.execution_actions())
    assert not any(a.lower().startswith("iam:") or a.endswith(":*") or a == "*" for a in resource_actions)
    for action in (
        "ecs:CreateService",
        "elasticloadbalancing:CreateLoadBalancer",
        "sagemaker:CreateEndpoint",
        "secretsmanager:CreateSecret",
        "kms:CreateKey",
        "lambda:CreateFunction",
        "ec2:CreateVpc",
    ):
        assert action in resource_actions, action
    for never in (
        "dynamodb:CreateTable",
        "organizations:LeaveOrganization",
        "sts:AssumeRole",
        "ec2:CreateVpnGateway",
    ):
        assert never not in resource_actions


def test_every_resource_type_our_stacks_render_is_one_the_execution_role_covers(built: Any) -> None:
    types = {r["Type"] for item in built.values() for r in item.resources.values()}
    custom = {t for t in types if t.startswith("Custom::")}
    registry = types - custom
    assert registry <= set(bootstrap.DEPLOYMENT_RESOURCE_TYPES), registry - set(
        bootstrap.DEPLOYMENT_RESOURCE_TYPES
    )
    # A custom resource is a Lambda CloudFormation invokes as the stack's role: our stacks' functions only.
    assert custom == {"Custom::HostCleanup"}
    invoke = bootstrap.custom_resource_statement(["dev", "prod"])
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert [r.to_dict()["Fn::Sub"].split(":")[-2:] for r in invoke["Resource"]] == [
        ["function", "dev-*"],
        ["function", "prod-*"],
    ]


def test_every_role_our_stacks_create_is_under_our_path_with_the_boundary(built: Any) -> None:
    for name, item in built.items():
        for logical, role_ in item.of_type("AWS::IAM::Role").items():
            props = plain(role_["Properties"])
            assert props["Path"] == ROLE_PATH, f"{name}/{logical}"
            assert props["PermissionsBoundary"] == BOUNDARY, f"{name}/{logical}"


def test_the_boundary_lets_no_role_touch_iam_or_leave_the_account() -> None:
    (document,) = [RESOURCES["WorkloadBoundary"]["Properties"]["PolicyDocument"]]
    assert RESOURCES["WorkloadBoundary"]["Properties"]["ManagedPolicyName"] == BOUNDARY_POLICY
    for action in (
        "iam:CreateRole",
        "iam:PassRole",
        "sts:AssumeRole",
        "organizations:ListAccounts",
        "secretsmanager:DeleteSecret",
        "kms:CreateGrant",
        "s3:PutObject",
        "ec2:RunInstances",
    ):
        assert not allowed([document], action, "*"), action
    for action in (
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "sagemaker:InvokeEndpoint",
        "ssm:GetParameter",
    ):
        assert allowed([document], action, "*"), action


# ---------------------------------------------------------------------- IAM's size quotas


def test_every_policy_fits_iams_quotas() -> None:
    for logical, resource in RESOURCES.items():
        props = resource["Properties"]
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            assert size(props["PolicyDocument"]) <= bootstrap.MANAGED_POLICY_LIMIT, logical
        if resource["Type"] == "AWS::IAM::Role":
            inline = sum(size(p["PolicyDocument"]) for p in props.get("Policies", []))
            assert inline <= bootstrap.INLINE_POLICIES_LIMIT, logical
            assert size(props["AssumeRolePolicyDocument"]) <= 2048, logical  # the default trust quota
            assert len(props.get("ManagedPolicyArns", [])) <= 10, logical
            assert 3600 <= props.get("MaxSessionDuration", 3600) <= 43200, logical


def test_the_account_stack_is_the_same_bytes_for_the_same_input() -> None:
    first = render(bootstrap.build_account(ENVIRONMENTS, REPO, ci_registry=True, ci_region="us-east-1"))
    assert first == render(
        bootstrap.build_account(ENVIRONMENTS, REPO, ci_registry=True, ci_region="us-east-1")
    )


def _managed_policy(arn: str) -> dict:
    """An AWS managed policy's document, from the copy moto ships (AWS's published versions)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)[arn.rsplit("/", 1)[-1]]["Document"]


def test_the_boundary_allows_everything_our_stacks_roles_are_granted(built: Any) -> None:
    """A boundary denies silently at run time: every action a stack's role holds must be inside it."""
    boundary = [RESOURCES["WorkloadBoundary"]["Properties"]["PolicyDocument"]]
    for name, item in built.items():
        for logical, role_ in item.of_type("AWS::IAM::Role").items():
            props = plain(role_["Properties"])
            docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
            docs += [_managed_policy(arn) for arn in props.get("ManagedPolicyArns", [])]
            for statement in (s for d in docs for s in d["Statement"] if s["Effect"] == "Allow"):
                for action in (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                ):
                    assert allowed(boundary, action.replace("*", "Any"), "*"), f"{name}/{logical}: {action}"


def test_every_kms_key_carries_the_environment_tag_the_key_conditions_use(built: Any) -> None:
    for name, item in built.items():
        for logical, key in item.of_type("AWS::KMS::Key").items():
            tags = {t["Key"]: t["Value"] for t in key["Properties"].get("Tags", [])}
            assert tags.get("deployctl:environment") == item.deployment.environment, f"{name}/{logical}"


# ---------------------------------------------------------------------- plans never touch what deploys run

DEPLOY_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deployctl/deployctl-deploy-prod"
PLAN_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deployctl/deployctl-plan-prod"
BUCKET = f"arn:aws:s3:::deployctl-artifacts-{ACCOUNT}-us-east-1"


def test_plan_and_deploy_templates_live_under_disjoint_prefixes() -> None:
    from tooling.cloudformation import TEMPLATE_PREFIXES

    assert TEMPLATE_PREFIXES["plan"] == bootstrap.PLAN_TEMPLATES
    assert TEMPLATE_PREFIXES["deploy"] == bootstrap.DEPLOY_TEMPLATES
    assert len(set(TEMPLATE_PREFIXES.values())) == len(TEMPLATE_PREFIXES)
    plan = documents(role("prod", "plan"))
    deploy = documents(role("prod", "deploy"))
    plan_key = f"{BUCKET}/templates/plan/prod-chat/{'a' * 64}.json"
    deploy_key = f"{BUCKET}/templates/deploy/prod-chat/{'a' * 64}.json"
    for action in ("s3:PutObject", "s3:GetObject"):
        assert allowed(plan, action, plan_key)
        assert allowed(deploy, action, deploy_key)
        assert not allowed(plan, action, deploy_key), action
        assert not allowed(deploy, action, plan_key), action
        # the old shared prefix, and another environment's deploys
        assert not allowed(plan, action, f"{BUCKET}/templates/prod-chat/{'a' * 64}.json")
        assert not allowed(deploy, action, f"{BUCKET}/templates/deploy/dev-chat/{'a' * 64}.json")


def regional_bucket_policy() -> dict:
    resources = plain(json.loads(render(bootstrap.build_regional()))["Resources"], "us-east-1",
                      {"ArtifactsBucket": "deployctl-artifacts"})  # fmt: skip
    document = resources["ArtifactsBucketPolicy"]["Properties"]["PolicyDocument"]
    return json.loads(json.dumps(document).replace("getatt:ArtifactsBucket.Arn", BUCKET))


def test_the_bucket_lets_only_deploy_roles_write_deploy_templates() -> None:
    policy = regional_bucket_policy()
    (deny,) = [s for s in policy["Statement"] if s["Sid"] == "OnlyDeployRolesWriteDeployTemplates"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    # An administrator (or any future role) granted s3:* on the bucket: the bucket policy still denies.
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    deploy_key = f"{BUCKET}/templates/deploy/prod-chat/{'b' * 64}.json"
    for principal in (PLAN_ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:role/Admin", f"arn:aws:iam::{ACCOUNT}:user/ci"):
        context = {"aws:PrincipalArn": principal, "aws:SecureTransport": "true"}
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert not allowed([admin, {"Statement": [deny]}], action, deploy_key, context), (
                principal,
                action,
            )
        assert allowed([admin, {"Statement": [deny]}], "s3:GetObject", deploy_key, context)
        plan_key = f"{BUCKET}/templates/plan/prod-chat/{'b' * 64}.json"
        assert allowed([admin, {"Statement": [deny]}], "s3:PutObject", plan_key, context)
    deploy_role = documents(role("prod", "deploy"))
    assert allowed([*deploy_role, {"Statement": [deny]}], "s3:PutObject", deploy_key,
                   {"aws:PrincipalArn": DEPLOY_ROLE_ARN})  # fmt: skip


def test_the_plan_role_reads_and_deletes_only_plan_change_sets() -> None:
    docs = documents(role("prod", "plan"))
    for action in ("cloudformation:DescribeChangeSet", "cloudformation:DeleteChangeSet"):
        ours = {"cloudformation:ChangeSetName": "deployctl-plan-0a1b2c3d4e5f"}
        assert allowed(docs, action, stack_arn("prod-chat"), ours)
        # A deploy's change set waiting for its reviewers: a pull request's code must not delete it.
        assert not allowed(
            docs, action, stack_arn("prod-chat"), {"cloudformation:ChangeSetName": "deployctl-1"}
        )
        assert not allowed(docs, action, stack_arn("prod-chat"), {})


def test_change_set_tags_are_authorized_on_create_only() -> None:
    plan = documents(role("prod", "plan"))
    create = {"cloudformation:CreateAction": "CreateChangeSet"}
    plan_tag = {"aws:RequestTag/deployctl:template-hash": "plan"}
    assert allowed(plan, "cloudformation:TagResource", stack_arn("prod-chat"), {**create, **plan_tag})
    # Retagging a deployed stack directly, or with another hash, or on execute: refused.
    assert not allowed(plan, "cloudformation:TagResource", stack_arn("prod-chat"), plan_tag)
    assert not allowed(plan, "cloudformation:TagResource", stack_arn("prod-chat"),
                       {**create, "aws:RequestTag/deployctl:template-hash": "3f2a"})  # fmt: skip
    assert not allowed(plan, "cloudformation:UntagResource", stack_arn("prod-chat"), create)
    deploy = documents(role("prod", "deploy"))
    for how in ("CreateChangeSet", "ExecuteChangeSet"):
        for action in ("cloudformation:TagResource", "cloudformation:UntagResource"):
            context = {"cloudformation:CreateAction": how}
            assert allowed(deploy, action, stack_arn("prod-chat"), context)
            assert not allowed(deploy, action, stack_arn("dev-chat"), context)
    assert not allowed(deploy, "cloudformation:TagResource", stack_arn("prod-chat"), {})


# ------------------------------------------------------------ the execution role stays in our stacks


def test_the_execution_role_touches_no_function_bucket_or_key_our_stacks_did_not_create() -> None:
    docs = execution_documents()
    ours = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-HostCleanup-1AbC"
    theirs = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:payments-settle"
    for action in ("lambda:InvokeFunction", "lambda:UpdateFunctionCode", "lambda:AddPermission",
                   "lambda:DeleteFunction"):  # fmt: skip
        assert allowed(docs, action, ours), action
        assert allowed(docs, action, f"{ours}:1"), action  # a qualified ARN
        assert not allowed(docs, action, theirs), action
        assert not allowed(docs, action, f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:staging-x"), action
    # Creation is not in the way: CloudFormation's generated names start with the stack name.
    assert allowed(docs, "lambda:CreateFunction", ours)
    assert allowed(docs, "lambda:ListFunctions", "*")
    bucket, other = "arn:aws:s3:::prod-chat-accesslogs-1x2y3z", "arn:aws:s3:::company-data-lake"
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:DeleteBucket",
                   "s3:PutBucketPublicAccessBlock", "s3:CreateBucket"):  # fmt: skip
        assert allowed(docs, action, bucket), action
        assert not allowed(docs, action, other), action
    assert allowed(docs, "s3:DeleteObject", f"{bucket}/AWSLogs/x.gz")
    assert not allowed(docs, "s3:DeleteObject", f"{other}/x.parquet")
    assert allowed(docs, "s3:GetBucketPolicy", other)  # reads stay open (drift, handlers' read)
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert allowed(docs, "kms:ScheduleKeyDeletion", key, {"aws:ResourceTag/deployctl:environment": "prod"})
    assert not allowed(docs, "kms:ScheduleKeyDeletion", key, {"aws:ResourceTag/deployctl:environment": "x"})
    assert not allowed(docs, "kms:ScheduleKeyDeletion", key, {})
    # A new key: its create handler's calls are not behind a tag condition (it may not be tagged yet).
    for action in ("kms:CreateKey", "kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:TagResource"):
        assert allowed(docs, action, key if action != "kms:CreateKey" else "*", {}), action


def test_the_confinement_covers_every_changing_lambda_and_s3_action_of_the_handlers() -> None:
    functions, buckets, *_others = bootstrap.confinement_statements(["prod"])
    changing = {
        a
        for a in bootstrap.execution_actions()
        if a.startswith(("lambda:", "s3:"))
        and a.split(":")[1].startswith(("Put", "Delete", "Update", "Invoke"))
    }
    # Those not covered act on other resource types (layers, access points, account settings).
    left = changing - set(functions["Action"]) - set(buckets["Action"])
    resources = bootstrap._iam_resources()
    for action in left:
        assert not set(resources[action.lower()]) <= {"function", "bucket", "object"}, action


def test_only_the_deploy_role_of_an_environment_writes_its_release_records() -> None:
    plan = documents(role("prod", "plan"))
    deploy = documents(role("prod", "deploy"))
    dev_deploy = documents(role("dev", "deploy"))
    record = f"{BUCKET}/releases/prod/20261202T151500Z-{'a' * 40}.json"
    for action in ("s3:PutObject", "s3:GetObject"):
        assert allowed(deploy, action, record), action
        assert not allowed(plan, action, record), action
        assert not allowed(dev_deploy, action, record), action  # another environment's records
    # The release smoke-tests with this role: the environment's API keys, and only this environment's.
    key = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:deployctl/prod/chat/api-key-AbCdEf"
    assert allowed(deploy, "secretsmanager:GetSecretValue", key)
    assert not allowed(dev_deploy, "secretsmanager:GetSecretValue", key)
    # A missing latest.json must read as 404, which S3 answers only to a caller with s3:ListBucket.
    assert allowed(deploy, "s3:ListBucket", BUCKET)
    policy = regional_bucket_policy()
    (deny,) = [s for s in policy["Statement"] if s["Sid"] == "OnlyDeployRolesWriteReleaseRecords"]
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    for principal in (PLAN_ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:role/Admin"):
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert not allowed(
                [admin, {"Statement": [deny]}], action, record, {"aws:PrincipalArn": principal}
            )
    assert allowed(
        [*deploy, {"Statement": [deny]}], "s3:PutObject", record, {"aws:PrincipalArn": DEPLOY_ROLE_ARN}
    )


def test_old_templates_expire_and_release_records_do_not() -> None:
    bucket = json.loads(render(bootstrap.build_regional()))["Resources"]["ArtifactsBucket"]["Properties"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == "templates/" and rule["ExpirationInDays"] == 90
    from tooling.release import records

    assert not records.latest_key("prod").startswith(rule["Prefix"])
    assert records.latest_key("prod").startswith(f"{bootstrap.RELEASE_RECORDS}/prod/")


def test_the_rotation_role_reaches_its_environments_probes_for_the_smoke_test_after_rotating() -> None:
    docs = documents(role("prod", "rotation"))
    probe = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-SmokeProbeFunction-a1B2c3D4e5F6"
    tags = {"aws:ResourceTag/deployctl:role": "smoke-probe", "aws:ResourceTag/deployctl:environment": "prod"}
    assert allowed(docs, "lambda:GetFunction", probe, tags)
    dev_probe = probe.replace(":prod-", ":dev-")
    dev_tags = {**tags, "aws:ResourceTag/deployctl:environment": "dev"}
    assert not allowed(docs, "lambda:GetFunction", dev_probe, dev_tags)
    assert not allowed(docs, "lambda:GetFunction", probe.replace("SmokeProbe", "Rotation"), {})


def test_roles_that_read_our_tagged_functions_may_read_their_tags() -> None:
    """GetFunction returns a tagged function's tags only to a caller allowed lambda:ListTags too
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-tags.html): CloudFormation's read of a
    function, for the execution role and for drift detection, would otherwise see none of our tags."""
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-RotationFunction-x1"
    for docs in (execution_documents(), documents(role("prod", "drift"))):
        assert allowed(docs, "lambda:GetFunction", function)
        assert allowed(docs, "lambda:ListTags", function)


def test_statement_ids_are_unique_in_each_policy_and_alphanumeric() -> None:
    """IAM: "the Sid value must be unique within a JSON policy", ASCII letters and digits only
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html). The deploy
    and rotation roles concatenate other roles' statements (smoke), where a repeated Sid would creep in."""
    regional = json.loads(render(bootstrap.build_regional()))["Resources"]
    checked = 0
    for logical, resource in {**RESOURCES, **regional}.items():
        props = resource["Properties"]
        documents_ = [props["PolicyDocument"]] if "PolicyDocument" in props else []
        documents_ += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents_:
            sids = [s["Sid"] for s in document["Statement"] if "Sid" in s]
            assert len(sids) == len(set(sids)), (logical, sids)
            assert all(sid.isascii() and sid.isalnum() for sid in sids), (logical, sids)
            checked += 1
    assert checked >= 10
