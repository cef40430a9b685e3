"""E9005: a Lambda function does not reserve concurrency."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import props


class LambdaReservedConcurrency(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "Lambda functions do not set ReservedConcurrentExecutions"
    description = (
        "Lambda refuses a reservation that would leave the account's unreserved concurrency below 100. "
        "New accounts commonly have a concurrency quota of 10, so any reservation fails the create there."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html"
    tags: ClassVar[list[str]] = ["resources", "lambda", "quotas"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        return [
            RuleMatch(
                ["Resources", name, "Properties", "ReservedConcurrentExecutions"],
                f"{name} sets ReservedConcurrentExecutions: Lambda refuses it on accounts whose unreserved "
                "concurrency would drop below 100 (new accounts: 10); leave it unset",
            )
            for name, res in cfn.get_resources(["AWS::Lambda::Function"]).items()
            if "ReservedConcurrentExecutions" in props(res)
        ]
