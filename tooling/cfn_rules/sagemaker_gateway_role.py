"""E9010: a gateway fronting SageMaker may invoke and describe its endpoint."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._iam import allows, role_statements
from tooling.cfn_rules._sagemaker import sagemaker_gateways, task_role
from tooling.cfn_rules._template import resource, target

ACTIONS = (
    "sagemaker:InvokeEndpoint",
    "sagemaker:InvokeEndpointWithResponseStream",
    "sagemaker:DescribeEndpoint",
)


class SageMakerGatewayRole(CloudFormationLintRule):
    id = "E9010"
    shortdesc = "SageMaker gateways may invoke and describe their endpoint"
    description = (
        "The gateway calls InvokeEndpoint / InvokeEndpointWithResponseStream for requests and "
        "DescribeEndpoint for its readiness check; without DescribeEndpoint on its task role the readiness "
        "check answers 503 forever. The task role of a SageMaker-fronting gateway must allow all three."
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html"
    tags: ClassVar[list[str]] = ["resources", "iam", "sagemaker", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for task, _, container, _env in sagemaker_gateways(cfn):
            role = target(task_role(cfn, task))
            path = ["Resources", task, "Properties", "TaskRoleArn"]
            if resource(cfn, role, "AWS::IAM::Role") is None:
                matches.append(
                    RuleMatch(
                        path if task_role(cfn, task) else path[:-1],
                        f"{task}: the SageMaker gateway {container.get('Name')!s} needs a task role "
                        f"in this template allowing {', '.join(ACTIONS)}",
                    )
                )
                continue
            granted = role_statements(cfn, role)
            missing = [a for a in ACTIONS if not allows(granted, a)]
            if missing:
                matches.append(
                    RuleMatch(
                        ["Resources", role, "Properties", "Policies"],
                        f"{role} (task role of the SageMaker gateway in {task}) does not allow "
                        f"{', '.join(missing)}",
                    )
                )
        return matches
