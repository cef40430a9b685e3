"""IAM roles, each scoped to this deployment's own log groups, secrets, repositories and endpoint."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Sub, iam

from templates.context import Stack
from templates.images import repository_arn

# Every role a deployment stack creates lives under this path and carries this permissions boundary (a
# managed policy of the account stack, templates/bootstrap.py): the CloudFormation execution role may
# create no other role, so nothing a stack makes can grant more than the boundary allows.
ROLE_PATH = "/deployctl/"
BOUNDARY_POLICY = "deployctl-workload-boundary"


def placement() -> dict[str, Any]:
    """Path and PermissionsBoundary, which every iam.Role of a deployment stack must carry."""
    return {
        "Path": ROLE_PATH,
        "PermissionsBoundary": Sub(
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy" + ROLE_PATH + BOUNDARY_POLICY
        ),
    }


def statement(actions: list[str], resources: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": sorted(actions), "Resource": resources, **extra}


def role(
    stack: Stack,
    logical: str,
    service: str,
    statements: list[dict[str, Any]],
    *,
    managed: tuple[str, ...] = (),
    skip: dict[str, str] | None = None,
) -> iam.Role:
    """A role that `service` assumes, only from this account, with one inline policy."""
    assume = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                **(
                    {"Condition": {"StringEquals": {"aws:SourceAccount": Sub("${AWS::AccountId}")}}}
                    if service not in _NO_SOURCE_CONDITION
                    else {}
                ),
            }
        ],
    }
    props: dict[str, Any] = {"AssumeRolePolicyDocument": assume, **placement()}
    if statements:
        props["Policies"] = [
            iam.Policy(
                PolicyName=f"{logical[0].lower()}{logical[1:]}",
                PolicyDocument={"Version": "2012-10-17", "Statement": statements},
            )
        ]
    if managed:
        props["ManagedPolicyArns"] = [
            Sub("arn:${AWS::Partition}:iam::aws:policy/" + name) for name in managed
        ]
    return stack.add(iam.Role(logical, **props), skip=skip)


# EC2 instance profiles cannot carry an aws:SourceAccount condition: EC2 does not send it. SageMaker
# keeps it: its confused-deputy page documents aws:SourceAccount / aws:SourceArn in the trust policy of
# the roles it assumes, inference (models, endpoints) included
# (https://docs.aws.amazon.com/sagemaker/latest/dg/security-confused-deputy-prevention.html).
_NO_SOURCE_CONDITION = {"ec2.amazonaws.com"}


def log_writer(log_group: Any) -> dict[str, Any]:
    arn = GetAtt(log_group, "Arn")
    return statement(["logs:CreateLogStream", "logs:PutLogEvents"], [arn, Sub("${Arn}:*", Arn=arn)])


def secret_arn_by_name(name: str) -> Any:
    """IAM `Resource` for a secret the spec names. For IAM only: never a `ValueFrom` (secret_value_from).

    Secrets Manager appends "-" and six random characters to every secret's ARN, so a name matches with
    the `-??????` wildcard; a full ARN (the spec accepts no partial one) is the resource itself.
    """
    if name.startswith("arn:"):
        return name
    return Sub(
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name + "-??????"
    )


def secret_key_decrypt(names: list[str]) -> dict[str, Any]:
    """kms:Decrypt of whatever customer-managed key encrypts the secrets the spec names, only as Secrets
    Manager uses it for those secrets.

    A secret the spec names may be encrypted with any key of the account; reading it needs kms:Decrypt on
    that key, or the task fails ResourceInitializationError
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html).
    The key is unknown, so the resource is "*", held by two conditions: the call comes through Secrets
    Manager (kms:ViaService), and Secrets Manager's encryption context names one of these secrets
    (kms:EncryptionContext:SecretARN, the secret's ARN, which pins its region too).
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html
    """
    return statement(
        ["kms:Decrypt"],
        "*",
        Condition={
            "StringLike": {
                "kms:ViaService": "secretsmanager.*.amazonaws.com",
                "kms:EncryptionContext:SecretARN": [secret_arn_by_name(n) for n in names],
            }
        },
    )


def secret_readers_by_name(names: list[str]) -> list[dict[str, Any]]:
    """Read secrets the spec names (not created here): values, and keys through Secrets Manager."""
    arns = [secret_arn_by_name(n) for n in names]
    return [
        statement(["secretsmanager:GetSecretValue"], arns[0] if len(arns) == 1 else arns),
        secret_key_decrypt(names),
    ]


def secret_value_from(name: str) -> str:
    """ECS `Secrets[].ValueFrom` for a secret the spec names: the full ARN the user gave, or the name.

    ECS resolves a full ARN, or in the task's own region the secret's name; the IAM wildcard ARN would
    be read as a complete ARN with the literal suffix "??????" and the task would never start.
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html
    """
    return name


def pull_statements(repository: str) -> list[dict[str, Any]]:
    return [
        # GetAuthorizationToken is account-wide by AWS's design; the pulls are scoped to our repository.
        statement(["ecr:GetAuthorizationToken"], "*"),
        statement(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            repository_arn(repository),
        ),
    ]


def secret_reader(secret_arn: Any, key_arn: Any | None = None) -> list[dict[str, Any]]:
    """Read every version of a secret: the gateway accepts AWSCURRENT, AWSPREVIOUS and AWSPENDING."""
    statements = [
        statement(
            [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
            ],
            secret_arn,
        )
    ]
    if key_arn is not None:
        statements.append(statement(["kms:Decrypt"], key_arn))
    return statements
