"""The account-level stack, once per account and region: what every deployment stack relies on.

An artifacts bucket for templates over the inline limit, the two ECR repositories (immutable tags,
scan on push, lifecycle rules), and for GitHub Actions an OIDC provider with a read-only plan role, a
deploy role that can only drive our stacks, and the execution role CloudFormation uses for them.
"""

from __future__ import annotations

import json

from troposphere import (
    And,
    Condition,
    Equals,
    GetAtt,
    Not,
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
from templates.images import GATEWAY_REPOSITORY, VLLM_REPOSITORY, repository_arn

STACK_NAME = "deployctl-bootstrap"
EXECUTION_ROLE = "deployctl-cloudformation-execution"
# What the deployment stacks create; CloudFormation's execution role may manage exactly these services.
SERVICES = (
    "application-autoscaling",
    "autoscaling",
    "budgets",
    "cloudwatch",
    "ec2",
    "ecs",
    "elasticloadbalancing",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sagemaker",
    "secretsmanager",
    "sns",
)


def build(environments: tuple[str, ...] = ("dev", "staging", "prod")) -> Template:
    t = Template()
    t.set_version("2010-09-09")
    t.set_description("deployctl bootstrap: artifacts bucket, ECR repositories, GitHub OIDC roles")
    repo = t.add_parameter(
        Parameter(
            "GitHubRepository", Type="String", Default="", Description="owner/name; empty: no GitHub roles"
        )
    )
    create_provider = t.add_parameter(
        Parameter(
            "CreateOidcProvider",
            Type="String",
            AllowedValues=["true", "false"],
            Default="true",
            Description="false when the account already has token.actions.githubusercontent.com",
        )
    )
    t.add_condition("HasGitHub", Not(Equals(Ref(repo), "")))
    t.add_condition("MakeProvider", And(Condition("HasGitHub"), Equals(Ref(create_provider), "true")))

    bucket = t.add_resource(
        s3.Bucket(
            "ArtifactsBucket",
            BucketName=Sub("deployctl-artifacts-${AWS::AccountId}-${AWS::Region}"),
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            **buckets.private("aws:kms"),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    s3.LifecycleRule(
                        Id="expire-old-templates",
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
            Bucket=Ref(bucket),
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [buckets.tls_only(bucket)],
            },
        )
    )
    lifecycle = {
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
    for logical, name in (("GatewayRepository", GATEWAY_REPOSITORY), ("VllmRepository", VLLM_REPOSITORY)):
        t.add_resource(
            ecr.Repository(
                logical,
                RepositoryName=name,
                ImageTagMutability="IMMUTABLE",
                ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
                EncryptionConfiguration=ecr.EncryptionConfiguration(EncryptionType="KMS"),
                LifecyclePolicy=ecr.LifecyclePolicy(
                    LifecyclePolicyText=json.dumps(lifecycle, sort_keys=True)
                ),
                DeletionPolicy="Retain",
                UpdateReplacePolicy="Retain",
            )
        )

    provider_arn = Sub(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/token.actions.githubusercontent.com"
    )
    t.add_resource(
        iam.OIDCProvider(
            "GitHubOidcProvider",
            Condition="MakeProvider",
            Url="https://token.actions.githubusercontent.com",
            ClientIdList=["sts.amazonaws.com"],
        )
    )
    stacks = [
        Sub(f"arn:${{AWS::Partition}}:cloudformation:*:${{AWS::AccountId}}:stack/{env}-*/*")
        for env in environments
    ]

    def github_role(
        logical: str, name: str, subjects: list[str], statements: list[dict], skip: dict[str, str]
    ) -> iam.Role:
        """A role GitHub Actions of the named repository assume through OIDC, only for `subjects`."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                        "StringLike": {
                            "token.actions.githubusercontent.com:sub": [
                                Sub("repo:${Repo}:" + s, Repo=Ref(repo)) for s in subjects
                            ]
                        },
                    },
                }
            ],
        }
        policy = iam.Policy(
            PolicyName=name.removeprefix("deployctl-"),
            PolicyDocument={"Version": "2012-10-17", "Statement": statements},
        )
        return t.add_resource(
            iam.Role(
                logical,
                Condition="HasGitHub",
                RoleName=name,
                Metadata=checkov_skip(skip),
                AssumeRolePolicyDocument=trust,
                Policies=[policy],
            )
        )

    change_sets = [
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:DeleteChangeSet",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:GetTemplate",
    ]
    reads = [
        "cloudformation:DescribeStacks",
        "cloudformation:ListStacks",
        "sts:GetCallerIdentity",
        "ssm:GetParameters",
        "budgets:ViewBudget",
    ]
    upload = {
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:GetObject"],
        "Resource": Sub("${Arn}/templates/*", Arn=GetAtt(bucket, "Arn")),
    }
    github_role(
        "PlanRole",
        "deployctl-plan",
        ["pull_request", "ref:refs/heads/main"],
        [
            # A plan makes change sets (and the empty shells of new stacks) and deletes them;
            # it can execute nothing.
            {"Effect": "Allow", "Action": change_sets, "Resource": stacks},
            {"Effect": "Allow", "Action": reads, "Resource": "*"},
            upload,
        ],
        {
            "CKV_AWS_108": "CloudFormation reads templates over the inline limit with the caller's "
            "credentials: s3:GetObject on the artifacts bucket's templates/ only"
        },
    )
    execution = t.add_resource(
        iam.Role(
            "CloudFormationExecutionRole",
            RoleName=EXECUTION_ROLE,
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
            Policies=[
                iam.Policy(
                    PolicyName="deployment-stacks",
                    PolicyDocument={
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": [f"{s}:*" for s in SERVICES], "Resource": "*"},
                            {
                                "Effect": "Allow",
                                "Action": ["ssm:GetParameters"],
                                "Resource": Sub("arn:${AWS::Partition}:ssm:*::parameter/aws/service/*"),
                            },
                        ],
                    },
                )
            ],
            Metadata=checkov_skip(
                dict.fromkeys(
                    ("CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111"),
                    "CloudFormation creates the deployments' resources of these services with this role; "
                    "only deploy roles may pass it, and only to our stacks",
                )
            ),
        )
    )
    github_role(
        "DeployRole",
        "deployctl-deploy",
        ["environment:*", "ref:refs/heads/main"],
        [
            {
                "Effect": "Allow",
                "Action": [
                    *change_sets,
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:ContinueUpdateRollback",
                    "cloudformation:UpdateTerminationProtection",
                    "cloudformation:DetectStackDrift",
                    "cloudformation:DescribeStackResourceDrifts",
                ],
                "Resource": stacks,
            },
            {
                "Effect": "Allow",
                "Action": [
                    *reads,
                    "cloudformation:DescribeStackDriftDetectionStatus",
                    "ecr:GetAuthorizationToken",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": GetAtt(execution, "Arn"),
                "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            },
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:CompleteLayerUpload",
                    "ecr:InitiateLayerUpload",
                    "ecr:PutImage",
                    "ecr:UploadLayerPart",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": [repository_arn(r) for r in (GATEWAY_REPOSITORY, VLLM_REPOSITORY)],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:RotateSecret",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                ],
                "Resource": Sub(
                    "arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:deployctl/*"
                ),
            },
            upload,
        ],
        {
            "CKV_AWS_108": "reads the deployments' own client API keys (deployctl/* only) to "
            "smoke-test endpoints and prove key rotations"
        },
    )
    t.add_output(Output("ArtifactsBucketName", Value=Ref(bucket)))
    t.add_output(Output("ExecutionRoleArn", Value=GetAtt(execution, "Arn")))
    return t
