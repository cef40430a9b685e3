"""E9013: Secrets Manager may invoke the rotation function of a rotation schedule, before it is created."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import depends_on, props, resource, target


class RotationPermission(CloudFormationLintRule):
    id = "E9013"
    shortdesc = "Rotation functions let Secrets Manager invoke them for the secret"
    description = (
        "Secrets Manager invokes a rotation function with its own service principal: the function needs a "
        "resource-based permission for secretsmanager.amazonaws.com to lambda:InvokeFunction, limited to the "
        "secret by SourceArn, and the rotation schedule must depend on that permission so the first "
        "rotation (started when the schedule is created) can call the function."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-secretsmanager-rotationschedule.html"
    tags: ClassVar[list[str]] = ["resources", "secretsmanager", "lambda"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        permissions = cfn.get_resources(["AWS::Lambda::Permission"])
        for name, res in cfn.get_resources(["AWS::SecretsManager::RotationSchedule"]).items():
            p = props(res)
            function = target(p.get("RotationLambdaARN"))
            if resource(cfn, function, "AWS::Lambda::Function") is None:
                continue
            secret = target(p.get("SecretId"))
            granting = [
                perm
                for perm, pres in permissions.items()
                if target(props(pres).get("FunctionName")) == function
                and props(pres).get("Principal") == "secretsmanager.amazonaws.com"
                and props(pres).get("Action") in ("lambda:InvokeFunction", "lambda:*")
                and (secret is None or target(props(pres).get("SourceArn")) == secret)
            ]
            if not granting:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "RotationLambdaARN"],
                        f"{name}: {function} has no Lambda permission for secretsmanager.amazonaws.com to "
                        f"lambda:InvokeFunction with SourceArn {secret}; rotation cannot call it",
                    )
                )
            elif not any(depends_on(cfn, name, perm) for perm in granting):
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        f"{name} does not depend on {granting[0]}: the first rotation may run before "
                        "Secrets Manager is allowed to invoke the function; add DependsOn",
                    )
                )
        return matches
