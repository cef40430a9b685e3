"""E9053: a Lambda function logs to a log group of its stack that has a retention."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import props, resource, target


class LambdaLogGroup(CloudFormationLintRule):
    id = "E9053"
    shortdesc = "Lambda functions log to a stack log group with a retention"
    description = (
        "Without LoggingConfig.LogGroup Lambda creates /aws/lambda/<function name> itself on the first "
        "invocation: never expiring, unencrypted by our key, and left behind when the stack is deleted. "
        "Every function names a log group of its stack that sets RetentionInDays."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-loggroups.html"
    tags: ClassVar[list[str]] = ["resources", "lambda", "logs"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::Lambda::Function"]).items():
            config = props(res).get("LoggingConfig")
            group = target(config.get("LogGroup")) if isinstance(config, dict) else None
            found = resource(cfn, group, "AWS::Logs::LogGroup")
            if found is None:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties"],
                        f"{name} names no log group of this stack in LoggingConfig.LogGroup: Lambda would "
                        "create /aws/lambda/<name> with no retention, outliving the stack",
                    )
                )
            elif "RetentionInDays" not in props(found):
                matches.append(
                    RuleMatch(
                        ["Resources", group, "Properties"],
                        f"{group}, the log group of {name}, sets no RetentionInDays: its logs never expire",
                    )
                )
        return matches
