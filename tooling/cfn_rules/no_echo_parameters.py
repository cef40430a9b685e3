"""E9055: no NoEcho parameters: a release records every parameter value, and DescribeStacks masks these."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template


class NoEchoParameters(CloudFormationLintRule):
    id = "E9055"
    shortdesc = "Template parameters are never NoEcho"
    description = (
        "A release records each stack's parameter values so that a rollback can deploy them again exactly "
        "(tooling/release/records.py). CloudFormation returns a NoEcho parameter's value as asterisks "
        "from DescribeStacks, so its value could only be recorded by writing the secret itself down, and "
        "a rollback would otherwise deploy the mask as the value. Secrets reach stacks through Secrets "
        "Manager references instead."
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html"
    )
    tags: ClassVar[list[str]] = ["parameters", "secrets", "release"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, parameter in (cfn.template.get("Parameters") or {}).items():
            if isinstance(parameter, dict) and str(parameter.get("NoEcho", "")).lower() == "true":
                matches.append(
                    RuleMatch(
                        ["Parameters", name, "NoEcho"],
                        f"parameter {name} is NoEcho: a release cannot record its value for a rollback "
                        "(DescribeStacks returns it masked); pass the secret through Secrets Manager",
                    )
                )
        return matches
