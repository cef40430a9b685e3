"""The bootstrap stacks: one account stack per AWS account, one regional stack per region in use.

Account stack (`deployctl-account`, IAM is global): the GitHub OIDC provider (or an existing one,
adopted by ARN), a permissions boundary every role of our stacks carries, the execution role
CloudFormation acts with, and per environment of that account a plan, deploy, smoke, rotation and drift
role, each trusting exactly the GitHub subject of the job that uses it. The CI registry's account also
gets the image push role.

Regional stack (`deployctl-bootstrap`, in each region a deployment runs in): the artifacts bucket for
templates over the inline limit and the two ECR repositories images replicate into.

Fixed-name resources never use `Retain` on create: a failed first bootstrap rolls back to nothing and can
simply run again. Where keeping them is the intent (the bucket, the repositories holding rollback
images), `RetainExceptOnCreate` keeps them on a stack delete only.
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from troposphere import (
    Equals,
    GetAtt,
    If,
    Output,
    Parameter,
    Ref,
    Sub,
    Template,
    ecr,
    iam,
    s3,
)

from templates import buckets
from templates.context import checkov_skip
from templates.iam import BOUNDARY_POLICY, ROLE_PATH
from templates.images import GATEWAY_REPOSITORY, VLLM_REPOSITORY
from templates.smoke_probe import ROLE_TAG as PROBE_ROLE_TAG
from templates.smoke_probe import ROLE_TAG_VALUE as PROBE_ROLE_TAG_VALUE

STACK_NAME = "deployctl-bootstrap"  # the regional stack (its name predates the split; deploys read it)
ACCOUNT_STACK_NAME = "deployctl-account"
EXECUTION_ROLE = "deployctl-cloudformation-execution"
PUSH_ROLE = "deployctl-image-push"
OIDC_HOST = "token.actions.githubusercontent.com"
REPOSITORY_PREFIX = "deployctl/"
# A plan's change sets (and the REVIEW_IN_PROGRESS shells of new stacks) carry this tag and value;
# the plan role may delete a stack only when it carries it (tooling/changesets.py stack_tags "plan").
PLAN_TAG = "deployctl:template-hash"
PLAN_TAG_VALUE = "plan"
# Plans name their change sets `deployctl-plan-<hex>` (tooling/changesets.py), deploys `deployctl-<hex>`.
PLAN_CHANGE_SETS = "deployctl-plan-*"
# The artifacts bucket's prefixes (tooling/cloudformation.py TEMPLATE_PREFIXES): a plan runs any pull
# request's code, so it may never write where a deploy's template waits for CreateChangeSet.
PLAN_TEMPLATES = "templates/plan"
DEPLOY_TEMPLATES = "templates/deploy"
# Release records (tooling/release/records.py): written by the deploy roles alone, each its own
# environment's, and never expired (a rollback reads the latest however old it is).
RELEASE_RECORDS = "releases"
DEPLOY_ROLES = "deployctl-deploy-*"

# Session lengths: each role's longest job (the workflows' timeout-minutes; tests keep them in step).
# Allowed range 3600-43200 s: https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html
SESSION_SECONDS = {"plan": 3600, "deploy": 5400, "smoke": 3600, "rotation": 3600, "drift": 3600, "push": 5400}

# Every CloudFormation resource type a deployment stack may contain. A test renders the whole spec matrix
# and fails when a template uses a type missing here: the execution role could not create it.
DEPLOYMENT_RESOURCE_TYPES = (
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScalingPolicy",
    "AWS::AutoScaling::ScheduledAction",
    "AWS::Budgets::Budget",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::EC2::EIP",
    "AWS::EC2::FlowLog",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::NatGateway",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::ECS::CapacityProvider",
    "AWS::ECS::Cluster",
    "AWS::ECS::ClusterCapacityProviderAssociations",
    "AWS::ECS::Service",
    "AWS::ECS::TaskDefinition",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::Role",
    "AWS::KMS::Key",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::Route53::RecordSet",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SageMaker::Endpoint",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Model",
    "AWS::SSM::Parameter",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::Secret",
)

# Services whose roles our stacks create, and the service-linked roles their resources need.
PASSED_TO = (
    "ec2.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "lambda.amazonaws.com",
    "sagemaker.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
    "application-autoscaling.amazonaws.com",
    "autoscaling.amazonaws.com",
)
SERVICE_LINKED = (
    "autoscaling.amazonaws.com",
    "ecs.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
    "sagemaker.application-autoscaling.amazonaws.com",
    "sagemaker.amazonaws.com",
    "spot.amazonaws.com",
)


# ------------------------------------------------------------------ permissions derived from AWS's schemas


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """The CloudFormation registry schemas cfn-lint ships (same bytes for the same cfn-lint pin)."""
    import cfnlint.data.schemas as data  # noqa: PLC0415

    base = Path(data.__file__).parent
    names = json.loads((base / "providers" / "us-east-1.json").read_text(encoding="utf-8"))
    out = {}
    for kind in DEPLOYMENT_RESOURCE_TYPES:
        out[kind] = json.loads((base / "resources" / f"{names[kind]}.json").read_text(encoding="utf-8"))
    return out


@cache
def _iam_actions() -> dict[str, set[str]]:
    """Service prefix -> its actions (lowercase), from the Service Authorization Reference data cfn-lint
    ships: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html"""
    import cfnlint.data.AdditionalSpecs as specs  # noqa: PLC0415

    data = json.loads((Path(specs.__file__).parent / "Policies.json").read_text(encoding="utf-8"))
    return {service: set(entry.get("Actions", {})) for service, entry in data.items()}


@cache
def _iam_resources() -> dict[str, tuple[str, ...]]:
    """`service:action` (lowercase) -> the resource types the Service Authorization Reference lists."""
    import cfnlint.data.AdditionalSpecs as specs  # noqa: PLC0415

    data = json.loads((Path(specs.__file__).parent / "Policies.json").read_text(encoding="utf-8"))
    return {
        f"{service}:{name}": tuple(entry.get("Resources") or ())
        for service, spec in data.items()
        for name, entry in spec.get("Actions", {}).items()
    }


# What a handler needs that its schema does not declare. Lambda returns a tagged function's tags from
# GetFunction only to a caller also allowed lambda:ListTags ("For tagged functions, this permission is
# also necessary for GetFunction": https://docs.aws.amazon.com/lambda/latest/dg/configuration-tags.html).
# Every function of ours is tagged: without it the read handler sees no tags, so drift detection reports
# each function's Tags as drifted, and stack-tag changes (every deploy's hash) are applied blind.
UNDECLARED_HANDLER_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "AWS::Lambda::Function": {"read": ("lambda:ListTags",)},
}


def handler_permissions(kinds: Iterable[str], handlers: Sequence[str]) -> set[str]:
    """The IAM actions CloudFormation's resource handlers call for `kinds`, as each schema declares.

    https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html (handlers)
    Schemas also name a few actions IAM does not define (internal or not yet public); no policy can grant
    those, so they are left out.

    Some handlers declare a read wildcard rather than its actions: AWS::AutoScaling::AutoScalingGroup's
    create, read and delete handlers declare only `autoscaling:Describe*` (with `ec2:Describe*`,
    `ec2:Get*`, `elasticloadbalancing:Describe*`, `ssm:Get*`), so without it the handler cannot call
    DescribeAutoScalingGroups and every stack with a GPU host group fails to create. Auto Scaling's
    own guide grants `autoscaling:Describe*` to whoever creates groups from launch templates:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html
    A wildcard is kept as declared when it is a read prefix (Describe/Get/List) matching actions IAM
    defines; any other wildcard (a write, or a service IAM does not know) is left out.
    """
    known = _iam_actions()
    actions: set[str] = set()
    for kind in kinds:
        declared = _schemas()[kind].get("handlers", {})
        for handler in handlers:
            undeclared = UNDECLARED_HANDLER_PERMISSIONS.get(kind, {}).get(handler, ())
            for action in (*declared.get(handler, {}).get("permissions", []), *undeclared):
                service, _, name = action.partition(":")
                if name.lower() in known.get(service.lower(), ()) or _read_wildcard(service, name):
                    actions.add(action)
    return actions


READ_PREFIXES = ("Describe", "Get", "List")
# Reads a kept wildcard covers that hand out credentials; the execution role denies them
# (confinement_statements).
CREDENTIAL_READS = ("ec2:GetPasswordData",)


def _read_wildcard(service: str, name: str) -> bool:
    """`name` is `<Describe|Get|List>*` and matches at least one action IAM defines for `service`."""
    if not (name.endswith("*") and "*" not in name[:-1] and name[:-1] in READ_PREFIXES):
        return False
    stem = name[:-1].lower()
    return any(a.startswith(stem) for a in _iam_actions().get(service.lower(), ()))


def covers(pattern: str, action: str) -> bool:
    """Whether the policy action `pattern` (IAM matches action names case-insensitively, `*` as a
    wildcard) grants `action`."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def execution_actions() -> list[str]:
    """What the execution role may call outside IAM: create/update/delete/read of our resource types."""
    actions = handler_permissions(DEPLOYMENT_RESOURCE_TYPES, ("create", "read", "update", "delete", "list"))
    return sorted(a for a in actions if not a.lower().startswith("iam:"))


def drift_actions() -> list[str]:
    """Drift detection reads every resource with the caller's credentials: the schemas' read handlers."""
    actions = handler_permissions(DEPLOYMENT_RESOURCE_TYPES, ("read",))
    # Reading a secret's metadata is enough for drift; its value never is. Parameters are read only
    # under our own path (DRIFT_PARAMETER_ACTIONS), never account-wide, where SecureStrings live.
    # A read wildcard that would grant one of those (`ssm:Get*`, `secretsmanager:Get*`) is left out too.
    never = ("secretsmanager:GetSecretValue", "kms:Decrypt", *DRIFT_PARAMETER_ACTIONS)
    return sorted(
        a for a in actions if not a.startswith("kms:Decrypt") and not any(covers(a, n) for n in never)
    )


DRIFT_PARAMETER_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters")


# ------------------------------------------------------------------ policy pieces


def _allow(actions: Iterable[str], resources: Any, condition: dict | None = None, sid: str = "") -> dict:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}
    if sid:
        statement = {"Sid": sid, **statement}
    if condition:
        statement["Condition"] = condition
    return statement


def _arn(service: str, resource: str, region: str = "*") -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:{service}:{region}:${{AWS::AccountId}}:{resource}")


def _stacks(environment: str) -> Sub:
    return _arn("cloudformation", f"stack/{environment}-*/*")


def _secrets(environment: str) -> Sub:
    return _arn("secretsmanager", f"secret:deployctl/{environment}/*")


def _key_through_secrets_manager(environment: str) -> dict:
    """A stack's KMS key, only as Secrets Manager uses it for this environment's secrets.

    https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service
    """
    return _allow(
        ["kms:Decrypt"],
        _arn("kms", "key/*"),
        {
            "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"},
            "StringEquals": {"aws:ResourceTag/deployctl:environment": environment},
        },
        sid="KeyOnlyThroughSecretsManager",
    )


def _boundary_arn() -> Sub:
    return Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:policy" + ROLE_PATH + BOUNDARY_POLICY)


def _role_arn(name: str) -> Sub:
    return Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + ROLE_PATH + name)


def trust(provider: Any, repository: str, subject: str) -> dict:
    """Only GitHub's tokens for exactly `repo:OWNER/NAME:<subject>`, minted for STS.

    https://docs.github.com/en/actions/reference/security/oidc (subject claims: environment, pull_request,
    ref); https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-idp_oidc.html
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{OIDC_HOST}:sub": f"repo:{repository}:{subject}",
                    }
                },
            }
        ],
    }


def subjects(environment: str) -> dict[str, str]:
    """The subject each role trusts: deploys run in the environment's GitHub environment (its reviewers
    approve them); plans in pull requests; smoke, rotation and drift on main (schedules run there)."""
    return {
        "plan": "pull_request",
        "deploy": f"environment:{environment}",
        "smoke": "ref:refs/heads/main",
        "rotation": "ref:refs/heads/main",
        "drift": "ref:refs/heads/main",
    }


def _change_sets(name: str = "*") -> Sub:
    return _arn("cloudformation", f"changeSet/{name}/*")


def _certificates() -> Sub:
    # Plans and deploys check the listener's certificate covers the endpoint's name and is ISSUED
    # (tooling/certificates.py); DescribeCertificate takes a certificate ARN:
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscertificatemanager.html
    return _arn("acm", "certificate/*")


def _quota_reads() -> list[dict]:
    """The quota preflight of plans and deploys (tooling/quotas.py): quotas, usage metrics, instances.

    Service Authorization Reference: GetServiceQuota takes a quota ARN (`<service code>/<quota code>`;
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_servicequotas.html), the
    other Service Quotas reads, cloudwatch:GetMetricData, ec2:DescribeInstances and
    sagemaker:ListEndpoints no resource; DescribeEndpoint and DescribeEndpointConfig take the
    endpoint's (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html).
    Usage is the account's, so every endpoint is described, not only ours.
    """
    return [
        _allow(
            ["servicequotas:GetServiceQuota"],
            [_arn("servicequotas", "ec2/*"), _arn("servicequotas", "sagemaker/*")],
            sid="ReadGpuQuotas",
        ),
        _allow(
            [
                "servicequotas:GetAWSDefaultServiceQuota",
                "servicequotas:ListServiceQuotas",
                "servicequotas:ListAWSDefaultServiceQuotas",
                "cloudwatch:GetMetricData",
                "ec2:DescribeInstances",
                "sagemaker:ListEndpoints",
            ],
            "*",
            sid="ReadQuotaUsage",
        ),
        _allow(
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
            [_arn("sagemaker", "endpoint/*"), _arn("sagemaker", "endpoint-config/*")],
            sid="CountEndpointInstances",
        ),
    ]


def _smoke_probes(environment: str) -> dict:
    """Invoke the smoke probes of this environment's stacks (templates/smoke_probe.py), nothing else.

    Two locks: the name CloudFormation gives a stack's function (`<env>-<name>-SmokeProbeFunction-…`,
    see confinement_statements), and the probe's tags, which Lambda evaluates for InvokeFunction and
    GetFunction as aws:ResourceTag (the function resource type's condition keys in the Service
    Authorization Reference; https://docs.aws.amazon.com/lambda/latest/dg/attribute-based-access-control.html).
    The rotation functions of the same stacks carry no probe tag, so this role cannot rotate a key.
    GetFunction: the state of a probe Lambda made Inactive, waited on before invoking it again.
    """
    return _allow(
        ["lambda:GetFunction", "lambda:InvokeFunction"],
        _arn("lambda", f"function:{environment}-*"),
        {
            "StringEquals": {
                f"aws:ResourceTag/{PROBE_ROLE_TAG}": PROBE_ROLE_TAG_VALUE,
                "aws:ResourceTag/deployctl:environment": environment,
            }
        },
        sid="InvokeOurSmokeProbes",
    )


def role_policies(environment: str, bucket_arn: Any) -> dict[str, list[dict]]:
    """Each workflow role's statements, scoped to the environment's stacks (`<env>-*`) and secrets.

    Condition keys and dependent actions are those of the Service Authorization Reference:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html
    (CreateChangeSet and ExecuteChangeSet depend on cloudformation:TagResource/UntagResource, which
    take cloudformation:CreateAction; DeleteChangeSet and DescribeChangeSet take
    cloudformation:ChangeSetName; DetectStackDrift depends on DetectStackResourceDrift).
    """
    stacks = _stacks(environment)
    plan_templates = Sub(f"${{Arn}}/{PLAN_TEMPLATES}/{environment}-*", Arn=bucket_arn)
    deploy_templates = Sub(f"${{Arn}}/{DEPLOY_TEMPLATES}/{environment}-*", Arn=bucket_arn)
    certificates = _allow(["acm:DescribeCertificate"], _certificates(), sid="CheckCertificates")
    reads = _allow(
        ["cloudformation:DescribeStacks", "cloudformation:ListStacks", "sts:GetCallerIdentity"],
        "*",
        sid="ListOurStacks",
    )
    images = _allow(
        ["ecr:DescribeImages"],
        [_arn("ecr", f"repository/{r}") for r in (GATEWAY_REPOSITORY, VLLM_REPOSITORY)],
        sid="ImageTagsPresent",
    )
    quota_reads = _quota_reads()
    secret_reads = _allow(
        ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], _secrets(environment),
        sid="ApiKeys",
    )  # fmt: skip
    smoke = [
        _allow(["cloudformation:DescribeStacks"], stacks, sid="StackOutputs"),
        secret_reads,
        _key_through_secrets_manager(environment),
        _smoke_probes(environment),
    ]
    return {
        "plan": [
            reads,
            images,
            _allow(
                [
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:GetTemplate",
                    "cloudformation:ListStackResources",
                ],
                stacks,
                sid="ReadOurStacks",
            ),
            # Only its own change sets: a deploy's, waiting for review, is neither read nor deleted.
            _allow(
                ["cloudformation:DescribeChangeSet", "cloudformation:DeleteChangeSet"],
                stacks,
                {"StringLike": {"cloudformation:ChangeSetName": PLAN_CHANGE_SETS}},
                sid="ReadAndCleanPlanChangeSets",
            ),
            # Change sets of plans only: each carries the plan tag, so the shell of a new stack does too.
            _allow(
                ["cloudformation:CreateChangeSet"],
                stacks,
                {
                    "StringEquals": {f"aws:RequestTag/{PLAN_TAG}": PLAN_TAG_VALUE},
                    "StringLike": {"cloudformation:ChangeSetName": PLAN_CHANGE_SETS},
                },
                sid="PlanChangeSets",
            ),
            # The tags a CreateChangeSet carries are authorized as TagResource; only on create, only
            # with the plan tag, so it can retag no deployed stack.
            _allow(
                ["cloudformation:TagResource"],
                [stacks, _change_sets(PLAN_CHANGE_SETS)],
                {
                    "StringEquals": {
                        "cloudformation:CreateAction": "CreateChangeSet",
                        f"aws:RequestTag/{PLAN_TAG}": PLAN_TAG_VALUE,
                    }
                },
                sid="TagPlanChangeSetsOnCreate",
            ),
            certificates,
            # The only stacks it may delete: the review shells its own change sets made.
            _allow(
                ["cloudformation:DeleteStack"],
                stacks,
                {"StringEquals": {f"aws:ResourceTag/{PLAN_TAG}": PLAN_TAG_VALUE}},
                sid="DeleteOwnReviewShells",
            ),
            _public_parameters(),
            _allow(
                ["budgets:ViewBudget"],
                Sub("arn:${AWS::Partition}:budgets::${AWS::AccountId}:budget/*"),
                sid="Budgets",
            ),
            _allow(["s3:PutObject", "s3:GetObject"], plan_templates, sid="LargeTemplatesOfPlans"),
            *quota_reads,
        ],
        "deploy": [
            reads,
            images,
            _allow(
                [
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
                ],
                stacks,
                sid="DriveOurStacks",
            ),
            # Stack tags (ownership, hash, commit) are set by the change set and applied on execute.
            _allow(
                ["cloudformation:TagResource", "cloudformation:UntagResource"],
                [stacks, _change_sets()],
                {"StringEquals": {"cloudformation:CreateAction": ["CreateChangeSet", "ExecuteChangeSet"]}},
                sid="TagOurStacksThroughChangeSets",
            ),
            # ValidateTemplate has no resource type (a failed stack's template is checked before the
            # stack is deleted and created again).
            _allow(["cloudformation:ValidateTemplate"], "*", sid="ValidateTemplates"),
            certificates,
            _allow(
                ["cloudformation:DescribeStacks"],
                _arn("cloudformation", f"stack/{STACK_NAME}/*"),
                sid="FindTheExecutionRole",
            ),
            _allow(
                ["iam:PassRole"],
                _role_arn(EXECUTION_ROLE),
                {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
                sid="PassOnlyTheExecutionRole",
            ),
            _public_parameters(),
            _allow(["s3:PutObject", "s3:GetObject"], deploy_templates, sid="LargeTemplatesOfDeploys"),
            _allow(
                ["s3:PutObject", "s3:GetObject"],
                Sub(f"${{Arn}}/{RELEASE_RECORDS}/{environment}/*", Arn=bucket_arn),
                sid="ReleaseRecordsOfThisEnvironment",
            ),
            # Without s3:ListBucket, S3 answers a GetObject of a missing key with 403 rather than 404
            # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html): a first release
            # must tell "no record yet" from "denied". The bucket holds generated templates and records.
            _allow(["s3:ListBucket"], bucket_arn, sid="MissingRecordsReadAsMissing"),
            # Deploys retry activating the budgets' cost-allocation tag until AWS accepts it (it has no
            # resource to scope to: Cost Explorer's service authorization reference).
            _allow(["ce:UpdateCostAllocationTagsStatus"], "*", sid="ActivateTheBudgetTag"),
            *quota_reads,
            # `deployctl release` smoke-tests what it deployed, in the same job: whatever the smoke role
            # may do, the deploy role may too (it already deploys any template through CloudFormation).
            *smoke,
        ],
        "smoke": smoke,
        "rotation": [
            _allow(["cloudformation:DescribeStacks"], stacks, sid="StackOutputs"),
            _allow(
                [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:RotateSecret",
                ],
                _secrets(environment),
                sid="RotateApiKeys",
            ),
            # RotateSecret needs lambda:InvokeFunction on the rotation function (the API reference).
            _allow(
                ["lambda:InvokeFunction"],
                _arn("lambda", f"function:{environment}-*"),
                sid="InvokeOurRotationFunctions",
            ),
            _key_through_secrets_manager(environment),
            # rotate-keys.yml smoke-tests with the new key in the same job, as this role: an internal
            # endpoint through its probe, GetFunction when Lambda has made the probe Inactive.
            _smoke_probes(environment),
        ],
        "drift": [
            _allow(
                [
                    "cloudformation:DetectStackDrift",
                    "cloudformation:DetectStackResourceDrift",
                    "cloudformation:DescribeStackResourceDrifts",
                    "cloudformation:DescribeStacks",
                ],
                stacks,
                sid="DetectDrift",
            ),
            # `deployctl drift` finds our stacks by their tag: DescribeStacks without a name is on "*".
            _allow(
                [
                    "cloudformation:DescribeStackDriftDetectionStatus",
                    "cloudformation:DescribeStacks",
                    "cloudformation:ListStacks",
                ],
                "*",
                sid="FindStacksAndDriftStatus",
            ),
            # CloudFormation reads each resource with the caller's permissions when it detects drift:
            # the shared managed policy deployctl-drift-reads (drift_actions) is attached to the role.
        ],
    }


def _public_parameters() -> dict:
    return _allow(
        ["ssm:GetParameters"],
        Sub("arn:${AWS::Partition}:ssm:*::parameter/aws/service/*"),
        sid="PublicParameters",
    )


# IAM's size quotas, counted without whitespace: a managed policy 6,144 characters, a role's inline
# policies together 10,240. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
MANAGED_POLICY_LIMIT = 6_144
INLINE_POLICIES_LIMIT = 10_240


def policy_size(document: dict) -> int:
    """A policy's size as IAM counts it (no whitespace), with Fn::Sub strings at their written length."""
    return len(json.dumps(_plain(document), separators=(",", ":")))


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            return (sub[0] if isinstance(sub, list) else sub).replace("${AWS::AccountId}", "123456789012")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def execution_resource_documents() -> list[dict]:
    """The execution role's resource permissions, split into managed policies that each fit IAM's quota.

    Actions are grouped by service, in order, so the same cfn-lint pin always gives the same documents.
    """
    documents: list[dict] = []
    current: list[str] = []
    budget = MANAGED_POLICY_LIMIT - 200  # the statement's own syntax
    for action in execution_actions():
        if current and len(json.dumps([*current, action])) > budget:
            documents.append(_document([_allow(current, "*", sid="DeploymentResources")]))
            current = []
        current.append(action)
    if current:
        documents.append(_document([_allow(current, "*", sid="DeploymentResources")]))
    return documents


def custom_resource_statement(environments: Sequence[str]) -> dict:
    """A Lambda-backed custom resource (ecs-gpu's HostCleanup) is invoked by CloudFormation with the stack's
    role: only functions of our stacks, whose generated names start with the stack name `<env>-…`.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-custom-resources-lambda.html
    """
    return _allow(
        ["lambda:InvokeFunction"],
        [_arn("lambda", f"function:{environment}-*") for environment in environments]
        or [_arn("lambda", "function:none")],
        sid="InvokeOurCustomResourceFunctions",
    )


def _changes_only_to(service: str, resource_types: set[str]) -> list[str]:
    """The execution role's actions of `service` that change (not Get/List/Describe) a resource of
    exactly `resource_types`: a name-scoped Deny on them can never hit another resource type."""
    resources = _iam_resources()
    return sorted(
        a
        for a in execution_actions()
        if a.startswith(f"{service}:")
        and not a.split(":")[1].startswith(("Get", "List", "Describe"))
        and resources.get(a.lower()) and set(resources[a.lower()]) <= resource_types
    )  # fmt: skip


def confinement_statements(environments: Sequence[str]) -> list[dict]:
    """What the handler-derived grants on "*" may not reach: resources our stacks did not create.

    CloudFormation names what it creates after the stack (`<env>-<name>-<Logical>-<random>`, buckets in
    lowercase): https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-name.html
    Our templates name no function or bucket themselves, so Lambda functions and S3 buckets outside
    `<env>-*` are refused by name (NotResource: no Lambda or S3 resource type is missed, see
    _changes_only_to). KMS keys carry no stack name; they carry deployctl:environment (a test checks
    each), so deleting a key is refused unless it is one of ours. PutKeyPolicy and DisableKey stay
    open: the key's create handler may call them before its TagResource, where a tag condition would
    break every new key.
    """
    names = list(environments) or ["none"]
    functions = [_arn("lambda", f"function:{e}-*") for e in names]
    buckets = [Sub(f"arn:${{AWS::Partition}}:s3:::{e}-*") for e in names]
    objects = [Sub(f"arn:${{AWS::Partition}}:s3:::{e}-*/*") for e in names]
    return [
        {
            "Sid": "OnlyFunctionsOfOurStacks",
            "Effect": "Deny",
            "Action": _changes_only_to("lambda", {"function"}),
            "NotResource": functions,
        },
        {
            "Sid": "OnlyBucketsOfOurStacks",
            "Effect": "Deny",
            "Action": _changes_only_to("s3", {"bucket", "object", "accesspointobject"}),
            "NotResource": buckets + objects,
        },
        # `ec2:Get*` (the AutoScalingGroup handler's declared read) also covers reading a Windows
        # instance's encrypted administrator password; no resource of ours needs that.
        {
            "Sid": "NoCredentialsThroughReadWildcards",
            "Effect": "Deny",
            "Action": list(CREDENTIAL_READS),
            "Resource": "*",
        },
        {
            "Sid": "OnlyKeysOfOurStacksAreDeleted",
            "Effect": "Deny",
            "Action": ["kms:ScheduleKeyDeletion"],
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:ResourceTag/deployctl:environment": names}},
        },
    ]


def _document(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}


def execution_iam_statements(environments: Sequence[str] = ()) -> list[dict]:
    """IAM for the execution role: only roles under our path, each created with the workload boundary.

    Stacks deployed before roles had a path hold roles at `/` named after the stack (`<env>-…`). Path is
    create-only, so their next update replaces each role, and CloudFormation then deletes the old one:
    that deletion, and nothing else, is allowed on those names.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iam-role.html#cfn-iam-role-path
    """
    roles = _role_arn("*")
    legacy = [
        Sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{environment}-*")
        for environment in environments
    ]
    cleanup = (
        [
            _allow(
                [
                    "iam:DeleteRole",
                    "iam:DeleteRolePolicy",
                    "iam:DetachRolePolicy",
                    "iam:GetRole",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                    "iam:ListInstanceProfilesForRole",
                    "iam:RemoveRoleFromInstanceProfile",
                ],
                legacy,
                sid="DeleteRolesOfOurStacksMadeBeforeThePath",
            )
        ]
        if legacy
        else []
    )
    boundary = {"StringEquals": {"iam:PermissionsBoundary": _boundary_arn()}}
    return [
        _allow(
            [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:AttachRolePolicy",
                "iam:DetachRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:PutRolePermissionsBoundary",
            ],
            roles,
            boundary,
            sid="RolesOnlyUnderOurPathWithTheBoundary",
        ),
        _allow(
            [
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:ListRoleTags",
                "iam:ListInstanceProfilesForRole",
            ],
            roles,
            sid="ManageRolesUnderOurPath",
        ),
        _allow(
            ["iam:PassRole"],
            roles,
            {"StringEquals": {"iam:PassedToService": list(PASSED_TO)}},
            sid="PassOurRolesToTheirServices",
        ),
        _allow(
            [
                "iam:CreateInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:GetInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:UntagInstanceProfile",
            ],
            Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*"),
            sid="InstanceProfilesOfOurRoles",
        ),
        _allow(
            ["iam:CreateServiceLinkedRole"],
            Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*"),
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED)}},
            sid="ServiceLinkedRoles",
        ),
        *cleanup,
        {
            "Sid": "BoundaryStaysOn",
            "Effect": "Deny",
            "Action": ["iam:DeleteRolePermissionsBoundary"],
            "Resource": "*",
        },
        {
            "Sid": "NeverTheBootstrapItself",
            "Effect": "Deny",
            "Action": ["iam:*"],
            "Resource": [
                _boundary_arn(),
                Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:policy" + ROLE_PATH + "deployctl-*"),
                Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + ROLE_PATH + "deployctl-*"),
            ],
        },
    ]


def boundary_statements() -> list[dict]:
    """The most any role of a deployment stack may do, whatever its own policy says.

    https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html
    """
    return [
        _allow(
            [
                # Container images and logs (gateway tasks, GPU hosts, Lambda, SageMaker)
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
                # API keys and model tokens, and the keys that encrypt them
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
                "secretsmanager:GetRandomPassword",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                # Gateway settings, weights, metrics, SageMaker invocations
                "ssm:GetParameter",
                "ssm:GetParameters",
                "s3:GetObject",
                "s3:ListBucket",
                "cloudwatch:PutMetricData",
                "sagemaker:InvokeEndpoint",
                "sagemaker:InvokeEndpointWithResponseStream",
                "sagemaker:DescribeEndpoint",
                # ECS container instances (the agent's managed policy) and Lambda in a VPC
                "ecs:CreateCluster",
                "ecs:DeregisterContainerInstance",
                "ecs:DiscoverPollEndpoint",
                "ecs:Poll",
                "ecs:RegisterContainerInstance",
                "ecs:StartTelemetrySession",
                "ecs:UpdateContainerInstancesState",
                "ecs:Submit*",
                "ecs:TagResource",
                "ecs:ListTagsForResource",
                "ec2:DescribeTags",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterfacePermission",
                "ec2:DescribeInstances",
                "autoscaling:CompleteLifecycleAction",
                # ecs-gpu's HostCleanup custom resource, when its stack is deleted
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:DescribeAutoScalingGroups",
                "ecs:ListContainerInstances",
                # ec2 hosts tell CloudFormation they serve (their role: their own stack only)
                "cloudformation:SignalResource",
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "*",
            sid="WhatDeploymentRolesMayDoAtMost",
        ),
    ]


# ------------------------------------------------------------------ the account stack


def build_account(
    environments: Sequence[str], github_repository: str, *, ci_registry: bool, ci_region: str = ""
) -> Template:
    """The account stack of one account: `environments` are those environments.yaml puts in it."""
    t = Template()
    t.set_version("2010-09-09")
    t.set_description(
        "deployctl account stack: GitHub OIDC roles per environment, the CloudFormation execution role "
        "and the permissions boundary of every role the deployment stacks create"
    )
    adopted = t.add_parameter(
        Parameter(
            "OidcProviderArn",
            Type="String",
            Default="",
            Description="An existing token.actions.githubusercontent.com provider; empty: create it",
        )
    )
    t.add_condition("MakeProvider", Equals(Ref(adopted), ""))
    t.add_resource(
        iam.OIDCProvider(
            "GitHubOidcProvider",
            Condition="MakeProvider",
            Url=f"https://{OIDC_HOST}",
            ClientIdList=["sts.amazonaws.com"],
        )
    )
    provider = If("MakeProvider", Ref("GitHubOidcProvider"), Ref(adopted))
    t.add_resource(
        iam.ManagedPolicy(
            "WorkloadBoundary",
            ManagedPolicyName=BOUNDARY_POLICY,
            Path=ROLE_PATH,
            Description="Permissions boundary of every role a deployctl deployment stack creates",
            PolicyDocument={"Version": "2012-10-17", "Statement": boundary_statements()},
            Metadata=checkov_skip(
                dict.fromkeys(
                    ("CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111"),
                    "a permissions boundary grants nothing: it caps what the roles our stacks create may do, "
                    "each of which has its own resource-scoped policy",
                )
            ),
        )
    )
    execution_policies = [
        t.add_resource(
            iam.ManagedPolicy(
                f"ExecutionPolicy{index}",
                ManagedPolicyName=f"deployctl-execution-{index}",
                Path=ROLE_PATH,
                Description="What CloudFormation's handlers call for the deployment stacks' resource types",
                PolicyDocument=document,
                Metadata=checkov_skip(
                    {
                        **dict.fromkeys(
                            ("CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111"),
                            "exactly the actions CloudFormation's handlers call for our resource types "
                            "(the registry schemas); stack resources get generated names, so no ARN can be "
                            "listed ahead; attached only to the role CloudFormation alone assumes",
                        ),
                        "CKV_AWS_107": "ec2:Get* is the AutoScalingGroup handler's declared read; the one "
                        "credential it covers (ec2:GetPasswordData) is denied by the role's inline "
                        "only-our-resources policy",
                    }
                ),
            )
        )
        for index, document in enumerate(execution_resource_documents(), start=1)
    ]
    drift_reads = t.add_resource(
        iam.ManagedPolicy(
            "DriftReads",
            ManagedPolicyName="deployctl-drift-reads",
            Path=ROLE_PATH,
            Description="Drift detection reads every resource with the caller's credentials",
            PolicyDocument=_document(
                [
                    _allow(drift_actions(), "*", sid="ReadResourcesForDrift"),
                    _allow(
                        DRIFT_PARAMETER_ACTIONS,
                        _arn("ssm", "parameter/deployctl/*"),
                        sid="ReadOurParametersForDrift",
                    ),
                ]
            ),
        )
    )
    t.add_resource(
        iam.Role(
            "CloudFormationExecutionRole",
            RoleName=EXECUTION_ROLE,
            Path=ROLE_PATH,
            AssumeRolePolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudformation.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
                    }
                ],
            },
            ManagedPolicyArns=[Ref(p) for p in execution_policies],
            Policies=[
                iam.Policy(
                    PolicyName="roles-under-our-path",
                    PolicyDocument=_document(execution_iam_statements(environments)),
                ),
                iam.Policy(
                    PolicyName="custom-resources",
                    PolicyDocument=_document([custom_resource_statement(environments)]),
                ),
                iam.Policy(
                    PolicyName="only-our-resources",
                    PolicyDocument=_document(confinement_statements(environments)),
                ),
            ],
            Metadata=checkov_skip(
                dict.fromkeys(
                    ("CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111"),
                    "CloudFormation creates the deployments' resources with this role: exactly the actions "
                    "of their types' handlers; IAM only under /deployctl/ with the workload boundary",
                )
            ),
        )
    )
    bucket_arn = Sub("arn:${AWS::Partition}:s3:::deployctl-artifacts-${AWS::AccountId}-*")
    for environment in environments:
        policies = role_policies(environment, bucket_arn)
        for role, subject in subjects(environment).items():
            managed = [Ref(drift_reads)] if role == "drift" else []
            _github_role(t, provider, github_repository, environment, role, subject, policies[role], managed)
    if ci_registry:
        _push_role(t, provider, github_repository, ci_region)
    t.add_output(Output("ExecutionRoleArn", Value=GetAtt("CloudFormationExecutionRole", "Arn")))
    t.add_output(Output("OidcProviderArn", Value=provider))
    return t


def _logical(environment: str, role: str) -> str:
    return "".join(p.capitalize() for p in (*environment.split("-"), role, "role"))


def _github_role(
    t: Template, provider: Any, repository: str, environment: str, role: str, subject: str,
    statements: list[dict], managed: list[Any],
) -> None:  # fmt: skip
    name = f"deployctl-{role}-{environment}"
    skips = {
        "plan": {"CKV_AWS_108": "s3:GetObject on the artifacts buckets' templates/plan/ only: "
                 "CloudFormation reads templates over the inline limit with the caller's credentials"},
        "smoke": {"CKV_AWS_108": "reads this environment's API keys (deployctl/<env>/*) to smoke-test"},
        "rotation": {"CKV_AWS_108": "rotates and reads back this environment's client API keys only"},
        "drift": {"CKV_AWS_108": "drift detection reads each resource (the schemas' read handlers)",
                  "CKV_AWS_107": "drift detection reads each resource (the schemas' read handlers)"},
        "deploy": {"CKV_AWS_108": "s3:GetObject on the artifacts buckets' templates/deploy/ only"},
    }  # fmt: skip
    t.add_resource(
        iam.Role(
            _logical(environment, role),
            RoleName=name,
            Path=ROLE_PATH,
            MaxSessionDuration=SESSION_SECONDS[role],
            AssumeRolePolicyDocument=trust(provider, repository, subject),
            Policies=[
                iam.Policy(
                    PolicyName=f"{role}-{environment}",
                    PolicyDocument={"Version": "2012-10-17", "Statement": statements},
                )
            ],
            **({"ManagedPolicyArns": managed} if managed else {}),
            **({"Metadata": checkov_skip(skips[role])} if role in skips else {}),
        )
    )


def push_statements(ci_region: str) -> list[dict]:
    repositories = [
        Sub(f"arn:${{AWS::Partition}}:ecr:{ci_region}:${{AWS::AccountId}}:repository/{r}")
        for r in (GATEWAY_REPOSITORY, VLLM_REPOSITORY)
    ]
    return [
        # GetAuthorizationToken has no resource to scope to (ECR's service authorization reference).
        _allow(["ecr:GetAuthorizationToken"], "*", sid="RegistryLogin"),
        _allow(
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:CompleteLayerUpload",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
                "ecr:BatchGetImage",
                "ecr:DescribeImages",
                "ecr:GetDownloadUrlForLayer",
            ],
            repositories,
            sid="PushToTheCiRegistry",
        ),
    ]


def _push_role(t: Template, provider: Any, repository: str, ci_region: str) -> None:
    """Image builds push once, to the CI registry; ECR replicates to every account and region in use."""
    t.add_resource(
        iam.Role(
            "ImagePushRole",
            RoleName=PUSH_ROLE,
            Path=ROLE_PATH,
            MaxSessionDuration=SESSION_SECONDS["push"],
            AssumeRolePolicyDocument=trust(provider, repository, "ref:refs/heads/main"),
            Policies=[
                iam.Policy(
                    PolicyName="push",
                    PolicyDocument={"Version": "2012-10-17", "Statement": push_statements(ci_region)},
                )
            ],
        )
    )


# ------------------------------------------------------------------ the regional stack

LIFECYCLE = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "untagged layers go after a week",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "keep the 50 newest images (rollback targets)",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
            "action": {"type": "expire"},
        },
    ]
}
REPOSITORIES = (("GatewayRepository", GATEWAY_REPOSITORY), ("VllmRepository", VLLM_REPOSITORY))


def deploy_templates_statement(bucket: Any) -> dict:
    """Only the deploy roles write where deploys' templates wait for CreateChangeSet.

    A plan runs a pull request's code; without this, any principal with s3:PutObject on the bucket
    (an administrator's grant, a future role) could overwrite a deploy's object between the upload and
    the change set and have its template executed. aws:PrincipalArn is the role's ARN (path included)
    for an assumed-role session:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn
    """
    return {
        "Sid": "OnlyDeployRolesWriteDeployTemplates",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": Sub(f"${{Arn}}/{DEPLOY_TEMPLATES}/*", Arn=GetAtt(bucket, "Arn")),
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": _role_arn(DEPLOY_ROLES)}},
    }


def release_records_statement(bucket: Any) -> dict:
    """Only the deploy roles write release records: a rollback deploys the templates a record holds,
    so a record written by a plan (a pull request's code) or anyone else would be executed as a release.
    """
    return {
        "Sid": "OnlyDeployRolesWriteReleaseRecords",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": Sub(f"${{Arn}}/{RELEASE_RECORDS}/*", Arn=GetAtt(bucket, "Arn")),
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": _role_arn(DEPLOY_ROLES)}},
    }


def build_regional() -> Template:
    """The artifacts bucket and the ECR repositories of one region.

    A bucket or repository of that name that exists outside the stack (left by an earlier bootstrap, or
    made by hand) is used as it is and never managed: bootstrap passes Create<X>=false and says so.
    """
    t = Template()
    t.set_version("2010-09-09")
    t.set_description("deployctl regional stack: artifacts bucket and ECR repositories")
    creates = {}
    for logical in ("ArtifactsBucket", *(r for r, _ in REPOSITORIES)):
        parameter = t.add_parameter(
            Parameter(
                f"Create{logical}",
                Type="String",
                AllowedValues=["true", "false"],
                Default="true",
                Description="false: one exists already outside this stack; use it unmanaged",
            )
        )
        t.add_condition(f"Make{logical}", Equals(Ref(parameter), "true"))
        creates[logical] = f"Make{logical}"
    bucket = t.add_resource(
        s3.Bucket(
            "ArtifactsBucket",
            Condition=creates["ArtifactsBucket"],
            BucketName=Sub("deployctl-artifacts-${AWS::AccountId}-${AWS::Region}"),
            DeletionPolicy="RetainExceptOnCreate",
            UpdateReplacePolicy="Retain",
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            **buckets.private("aws:kms"),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    # Templates only: release records are kept (the AWS::S3::Bucket Rule's Prefix:
                    # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-s3-bucket-rule.html).
                    s3.LifecycleRule(
                        Id="expire-old-templates",
                        Prefix="templates/",
                        Status="Enabled",
                        ExpirationInDays=90,
                        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=30),
                    )
                ]
            ),
            Metadata=checkov_skip(
                {"CKV_AWS_18": "holds generated templates only; CloudTrail records access"}
            ),
        )
    )
    t.add_resource(
        s3.BucketPolicy(
            "ArtifactsBucketPolicy",
            Condition=creates["ArtifactsBucket"],
            Bucket=Ref(bucket),
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    buckets.tls_only(bucket),
                    deploy_templates_statement(bucket),
                    release_records_statement(bucket),
                ],
            },
        )
    )
    for logical, name in REPOSITORIES:
        t.add_resource(
            ecr.Repository(
                logical,
                Condition=creates[logical],
                RepositoryName=name,
                ImageTagMutability="IMMUTABLE",
                ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
                EncryptionConfiguration=ecr.EncryptionConfiguration(EncryptionType="KMS"),
                LifecyclePolicy=ecr.LifecyclePolicy(
                    LifecyclePolicyText=json.dumps(LIFECYCLE, sort_keys=True)
                ),
                DeletionPolicy="RetainExceptOnCreate",
                UpdateReplacePolicy="Retain",
            )
        )
    t.add_output(
        Output("ArtifactsBucketName", Value=Sub("deployctl-artifacts-${AWS::AccountId}-${AWS::Region}"))
    )
    t.add_output(Output("ExecutionRoleArn", Value=_role_arn(EXECUTION_ROLE)))
    return t
