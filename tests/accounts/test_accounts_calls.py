"""The contract between the code paths and their roles: every AWS call each path makes, as a table.

Each entry is one API call a workflow makes with its GitHub role, with the resource and request context
AWS authorizes it against (Service Authorization Reference:
https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html),
and is asserted allowed by the account stack's documents (tests/accounts/policies.py, IAM's logic).
A second test reads the modules of those paths and fails when one makes a call the table does not
list: a new boto3 call cannot ship without the permission its role needs (acm:DescribeCertificate
once did).

Not in the table, on purpose: `deployctl bootstrap` (tooling/accounts/bootstrap.py, replication.py)
and `deployctl usage` (tooling/usage.py: cloudwatch:ListMetrics, GetMetricData) run with a person's
own credentials, not a workflow role (README, "Accounts").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import botocore.session
import pytest
from botocore import xform_name

from tests.accounts.policies import ACCOUNT, allowed
from tests.accounts.test_accounts_roles import documents, role, stack_arn

ROOT = Path(__file__).resolve().parents[2]
ENV = "prod"
STACK = stack_arn("prod-chat")
BUCKET = f"arn:aws:s3:::deployctl-artifacts-{ACCOUNT}-us-east-1"
KEY = "a" * 64
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:deployctl/prod/chat/api-key-AbCdEf"
CERTIFICATE = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
REPOSITORY = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/deployctl/gateway"
PLAN_CHANGE_SET = {"cloudformation:ChangeSetName": "deployctl-plan-0a1b2c3d4e5f"}
PLAN_TAGS = {"aws:RequestTag/deployctl:template-hash": "plan"}
PROBE = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-SmokeProbeFunction-a1B2c3D4e5F6"
PROBE_TAGS = {"aws:ResourceTag/deployctl:role": "smoke-probe", "aws:ResourceTag/deployctl:environment": ENV}


class Call(NamedTuple):
    role: str
    service: str  # boto3's client name
    operation: str  # the API operation (its IAM action has the same name unless `action` says)
    resource: str
    context: dict
    action: str = ""

    @property
    def iam_action(self) -> str:
        prefix = {"cloudwatch": "cloudwatch", "service-quotas": "servicequotas"}.get(
            self.service, self.service
        )
        return self.action or f"{prefix}:{self.operation}"


CALLS = [
    # plan: tooling/changesets.py, tooling/cloudformation.py, tooling/certificates.py, accounts/images.py
    Call("plan", "sts", "GetCallerIdentity", "*", {}),
    Call("plan", "cloudformation", "DescribeStacks", "*", {}),
    Call("plan", "cloudformation", "DescribeStackEvents", STACK, {}),
    Call("plan", "cloudformation", "ListStackResources", STACK, {}),
    Call("plan", "cloudformation", "CreateChangeSet", STACK, {**PLAN_CHANGE_SET, **PLAN_TAGS}),
    Call("plan", "cloudformation", "CreateChangeSet", STACK,
         {"cloudformation:CreateAction": "CreateChangeSet", **PLAN_TAGS}, "cloudformation:TagResource"),
    Call("plan", "cloudformation", "DescribeChangeSet", STACK, PLAN_CHANGE_SET),
    Call("plan", "cloudformation", "DeleteChangeSet", STACK, PLAN_CHANGE_SET),
    Call("plan", "cloudformation", "DeleteStack", STACK, {"aws:ResourceTag/deployctl:template-hash": "plan"}),
    Call("plan", "s3", "PutObject", f"{BUCKET}/templates/plan/prod-chat/{KEY}.json", {}),
    # CloudFormation reads a TemplateURL with the caller's credentials
    Call("plan", "s3", "GetObject", f"{BUCKET}/templates/plan/prod-chat/{KEY}.json", {}),
    Call("plan", "acm", "DescribeCertificate", CERTIFICATE, {}),
    Call("plan", "ecr", "DescribeImages", REPOSITORY, {}),
    # deploy: tooling/deploy.py, tooling/cloudformation.py, tooling/certificates.py, accounts/billing.py
    Call("deploy", "sts", "GetCallerIdentity", "*", {}),
    Call("deploy", "cloudformation", "DescribeStacks", "*", {}),
    Call("deploy", "cloudformation", "DescribeStackEvents", STACK, {}),
    Call("deploy", "cloudformation", "ListStackResources", STACK, {}),
    Call("deploy", "cloudformation", "ValidateTemplate", "*", {}),
    Call("deploy", "cloudformation", "CreateChangeSet", STACK, {}),
    Call("deploy", "cloudformation", "CreateChangeSet", STACK,
         {"cloudformation:CreateAction": "CreateChangeSet"}, "cloudformation:TagResource"),
    Call("deploy", "cloudformation", "CreateChangeSet", f"arn:aws:iam::{ACCOUNT}:role/deployctl/"
         "deployctl-cloudformation-execution", {"iam:PassedToService": "cloudformation.amazonaws.com"},
         "iam:PassRole"),
    Call("deploy", "cloudformation", "DescribeChangeSet", STACK, {}),
    Call("deploy", "cloudformation", "ExecuteChangeSet", STACK, {}),
    Call("deploy", "cloudformation", "ExecuteChangeSet", STACK,
         {"cloudformation:CreateAction": "ExecuteChangeSet"}, "cloudformation:TagResource"),
    Call("deploy", "cloudformation", "ExecuteChangeSet", STACK,
         {"cloudformation:CreateAction": "ExecuteChangeSet"}, "cloudformation:UntagResource"),
    Call("deploy", "cloudformation", "DeleteChangeSet", STACK, {}),
    Call("deploy", "cloudformation", "ContinueUpdateRollback", STACK, {}),
    Call("deploy", "cloudformation", "UpdateTerminationProtection", STACK, {}),
    Call("deploy", "cloudformation", "DeleteStack", STACK, {}),
    Call("deploy", "s3", "PutObject", f"{BUCKET}/templates/deploy/prod-chat/{KEY}.json", {}),
    Call("deploy", "s3", "GetObject", f"{BUCKET}/templates/deploy/prod-chat/{KEY}.json", {}),
    Call("deploy", "acm", "DescribeCertificate", CERTIFICATE, {}),
    Call("deploy", "ecr", "DescribeImages", REPOSITORY, {}),
    Call("deploy", "ce", "UpdateCostAllocationTagsStatus", "*", {}),
    # plan and deploy: tooling/quotas.py, the quota preflight
    *(
        Call(who, service, operation, resource, {})
        for who in ("plan", "deploy")
        for service, operation, resource in (
            ("service-quotas", "GetServiceQuota",
             f"arn:aws:servicequotas:us-east-1:{ACCOUNT}:ec2/L-DB2E81BA"),
            ("service-quotas", "GetServiceQuota",
             f"arn:aws:servicequotas:us-east-1:{ACCOUNT}:sagemaker/L-3D5B7E39"),
            ("service-quotas", "GetAWSDefaultServiceQuota", "*"),
            ("service-quotas", "ListServiceQuotas", "*"),
            ("service-quotas", "ListAWSDefaultServiceQuotas", "*"),
            ("cloudwatch", "GetMetricData", "*"),
            ("ec2", "DescribeInstances", "*"),
            ("sagemaker", "ListEndpoints", "*"),
            ("sagemaker", "DescribeEndpoint", f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/other-team"),
            ("sagemaker", "DescribeEndpointConfig",
             f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint-config/other-team-config"),
        )
    ),
    # deploy: a release smoke-tests what it deployed (tooling/smoke.py, below, as the smoke role)
    Call("deploy", "lambda", "Invoke", PROBE, PROBE_TAGS, "lambda:InvokeFunction"),
    Call("deploy", "lambda", "GetFunction", PROBE, PROBE_TAGS),
    # release: tooling/release/ runs as the deploy role; its records, and the smoke tests in the same job
    Call("deploy", "s3", "GetObject", f"{BUCKET}/releases/prod/latest.json", {}),
    Call("deploy", "s3", "GetObject", f"{BUCKET}/releases/prod/20261202T151500Z-{'a' * 40}.json", {}),
    Call("deploy", "s3", "PutObject", f"{BUCKET}/releases/prod/20261202T151500Z-{'a' * 40}.json", {}),
    Call("deploy", "s3", "PutObject", f"{BUCKET}/releases/prod/latest.json", {}),
    # A GetObject of a missing key answers 404 only with s3:ListBucket (else 403): a first release.
    Call("deploy", "s3", "GetObject", BUCKET, {}, "s3:ListBucket"),
    Call("deploy", "cloudformation", "DescribeStacks", STACK, {}),
    Call("deploy", "secretsmanager", "GetSecretValue", SECRET, {}),
    Call("deploy", "secretsmanager", "GetSecretValue", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k",
         {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com",
          "aws:ResourceTag/deployctl:environment": ENV}, "kms:Decrypt"),
    # smoke: tooling/cli.py smoke → cloudformation.describe, tooling/keys.py current
    Call("smoke", "cloudformation", "DescribeStacks", STACK, {}),
    Call("smoke", "secretsmanager", "GetSecretValue", SECRET, {}),
    Call("smoke", "secretsmanager", "GetSecretValue", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k",
         {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com",
          "aws:ResourceTag/deployctl:environment": ENV}, "kms:Decrypt"),
    # smoke: tooling/smoke.py check_deployment → the stack's probe, for an internal load balancer; the
    # function_active_v2 waiter (GetFunction) when Lambda made the probe Inactive
    Call("smoke", "lambda", "Invoke", PROBE, PROBE_TAGS, "lambda:InvokeFunction"),
    Call("smoke", "lambda", "GetFunction", PROBE, PROBE_TAGS),
    # rotation: tooling/keys.py
    Call("rotation", "cloudformation", "DescribeStacks", STACK, {}),
    Call("rotation", "secretsmanager", "DescribeSecret", SECRET, {}),
    Call("rotation", "secretsmanager", "RotateSecret", SECRET, {}),
    Call("rotation", "secretsmanager", "RotateSecret",
         f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:prod-chat-RotationFunction-x1", {},
         "lambda:InvokeFunction"),
    Call("rotation", "secretsmanager", "GetSecretValue", SECRET, {}),
    # rotate-keys.yml smoke-tests with the new key in the same job, as the rotation role: internal
    # endpoints through their probes (tooling/smoke.py), an Inactive probe waited on with GetFunction
    Call("rotation", "lambda", "Invoke", PROBE, PROBE_TAGS, "lambda:InvokeFunction"),
    Call("rotation", "lambda", "GetFunction", PROBE, PROBE_TAGS),
    # drift: tooling/drift.py, and `deployctl drift` finding stacks by their tags
    Call("drift", "cloudformation", "DescribeStacks", "*", {}),
    Call("drift", "cloudformation", "DetectStackDrift", STACK, {}),
    Call("drift", "cloudformation", "DetectStackDrift", STACK, {}, "cloudformation:DetectStackResourceDrift"),
    Call("drift", "cloudformation", "DescribeStackDriftDetectionStatus", "*", {}),
    Call("drift", "cloudformation", "DescribeStackResourceDrifts", STACK, {}),
]  # fmt: skip

# The modules of those paths, and the roles they run as.
MODULES = {
    "tooling/changesets.py": ("plan",),
    "tooling/deploy.py": ("deploy",),
    "tooling/cloudformation.py": ("plan", "deploy"),
    "tooling/certificates.py": ("plan", "deploy"),
    "tooling/accounts/images.py": ("plan", "deploy"),
    "tooling/accounts/billing.py": ("deploy",),
    "tooling/aws.py": ("plan", "deploy"),
    "tooling/keys.py": ("smoke", "rotation", "deploy"),
    "tooling/smoke.py": ("smoke", "deploy", "rotation"),
    "tooling/release/engine.py": ("deploy",),
    "tooling/release/records.py": ("deploy",),
    "tooling/release/rollback.py": ("deploy",),
    "tooling/drift.py": ("drift",),
    "tooling/ownership.py": ("plan", "deploy"),
    "tooling/quotas.py": ("plan", "deploy"),
}
SERVICES = ("cloudformation", "secretsmanager", "acm", "ecr", "s3", "sts", "ce", "service-quotas",
            "cloudwatch", "ec2", "sagemaker", "lambda")  # fmt: skip
# Calls in those modules that belong to one role only (shared helpers used by one path).
ONLY = {
    ("tooling/cloudformation.py", "UpdateTerminationProtection"): ("deploy",),
    # apply_change_set executes; plans only create, read and delete change sets (changesets.py).
    ("tooling/cloudformation.py", "ExecuteChangeSet"): ("deploy",),
    ("tooling/keys.py", "RotateSecret"): ("rotation",),
    # re.search, not SageMaker's Search (the scan matches method names).
    ("tooling/ownership.py", "Search"): (),
    ("tooling/keys.py", "DescribeSecret"): ("rotation",),
}


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.role}-{c.iam_action}")
def test_each_call_of_each_path_is_allowed_for_its_role(call: Call) -> None:
    docs = documents(role(ENV, call.role))
    assert allowed(docs, call.iam_action, call.resource, call.context), call


def _operations() -> dict[str, str]:
    """boto3 method name -> API operation, for the services those paths use."""
    session = botocore.session.get_session()
    out = {}
    for service in SERVICES:
        for name in session.get_service_model(service).operation_names:
            out[xform_name(name)] = name
    return out


def calls_in(path: str) -> set[str]:
    """The API operations a module calls: `x.<operation>(...)` and `get_paginator("<operation>")`."""
    operations = _operations()
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
            name = str(node.args[0].value)
        elif isinstance(node.func.value, ast.Name) and node.func.value.id in ("cf", "certificates"):
            continue  # our own helpers (tooling/cloudformation.py is read itself)
        if name in operations:
            found.add(operations[name])
    return found


def test_the_table_lists_every_call_those_modules_make() -> None:
    listed = {(c.role, c.operation) for c in CALLS}
    missing = []
    for path, roles in MODULES.items():
        for operation in sorted(calls_in(path)):
            for who in ONLY.get((path, operation), roles):
                if (who, operation) not in listed:
                    missing.append(f"{path}: {operation} as {who}")
    assert not missing, "calls with no permission entry in CALLS: " + ", ".join(missing)


def test_the_scan_sees_the_calls_it_must() -> None:
    # The scan itself can fail: these are calls the modules are known to make.
    assert {
        "CreateChangeSet",
        "DescribeChangeSet",
        "ExecuteChangeSet",
        "ListStackResources",
        "PutObject",
    } <= calls_in("tooling/cloudformation.py")
    assert "DescribeCertificate" in calls_in("tooling/certificates.py")
    assert {"GetObject", "PutObject"} <= calls_in("tooling/release/records.py")
    assert {"ValidateTemplate", "ContinueUpdateRollback"} <= calls_in("tooling/deploy.py")
    assert {"DetectStackDrift", "DescribeStackResourceDrifts"} <= calls_in("tooling/drift.py")
    assert re.search(r"describe_certificate\(", (ROOT / "tooling/certificates.py").read_text())
