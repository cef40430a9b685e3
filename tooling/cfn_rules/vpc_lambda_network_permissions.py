"""E9054: a Lambda function in a VPC has a role that lets Lambda manage its network interfaces."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, resource, statements, target, text

# The actions Lambda performs with the execution role of a function attached to a VPC.
NEEDED = ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces")
MANAGED = "AWSLambdaVPCAccessExecutionRole"


class VpcLambdaNetworkPermissions(CloudFormationLintRule):
    id = "E9054"
    shortdesc = "Lambda functions in a VPC may manage their network interfaces"
    description = (
        "Lambda creates and deletes a VPC function's network interfaces with the function's execution "
        "role: without ec2:CreateNetworkInterface, ec2:DescribeNetworkInterfaces and "
        "ec2:DeleteNetworkInterface (on all resources, as AWSLambdaVPCAccessExecutionRole grants them) the "
        "create fails. The role must be one of the stack, granting them in its own policies."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html"
    tags: ClassVar[list[str]] = ["resources", "lambda", "iam", "ec2"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::Lambda::Function"]).items():
            config = props(res).get("VpcConfig")
            if not isinstance(config, dict) or not config.get("SubnetIds"):
                continue
            role_name = target(props(res).get("Role"))
            role = resource(cfn, role_name, "AWS::IAM::Role")
            if role is None:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Role"],
                        f"{name} is in a VPC and its Role is not a role of this stack: its network "
                        "interface permissions cannot be checked",
                    )
                )
                continue
            missing = [a for a in NEEDED if not _grants(props(role), a)]
            if missing:
                matches.append(
                    RuleMatch(
                        ["Resources", role_name, "Properties"],
                        f"{role_name}, the role of {name} in a VPC, does not grant {', '.join(missing)} on "
                        '"*": Lambda cannot create or delete the function\'s network interfaces',
                    )
                )
        return matches


def _grants(role: dict, action: str) -> bool:
    if any(MANAGED in (text(arn) or "") for arn in as_list(role.get("ManagedPolicyArns"))):
        return True
    for policy in as_list(role.get("Policies")):
        for statement in statements(policy.get("PolicyDocument") if isinstance(policy, dict) else None):
            if statement.get("Effect") != "Allow" or "*" not in as_list(statement.get("Resource")):
                continue
            if any(a in (action, "ec2:*", "*") for a in as_list(statement.get("Action"))):
                return True
    return False
