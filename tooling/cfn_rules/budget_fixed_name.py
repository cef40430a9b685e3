"""E9023: a budget has no fixed BudgetName, so a change of its notifications can replace it."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import props


class BudgetFixedName(CloudFormationLintRule):
    id = "E9023"
    shortdesc = "Budgets leave BudgetName to CloudFormation"
    description = (
        "AWS::Budgets::Budget's NotificationsWithSubscribers and Budget.BudgetName are both create-only "
        "(the resource schema's createOnlyProperties): changing a notification replaces the budget, "
        "CloudFormation creates the replacement before deleting the old one, and AWS Budgets refuses a "
        "second budget of the same name, so the update rolls back. Without a BudgetName each replacement "
        "gets a new generated name."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-budgets-budget.html"
    tags: ClassVar[list[str]] = ["resources", "budgets", "replacement"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for logical_id, res in cfn.get_resources("AWS::Budgets::Budget").items():
            budget = props(res).get("Budget")
            if isinstance(budget, dict) and "BudgetName" in budget:
                matches.append(
                    RuleMatch(
                        ["Resources", logical_id, "Properties", "Budget", "BudgetName"],
                        f"{logical_id} has a fixed BudgetName: a change of its notifications replaces it, "
                        "and the replacement with the same name is refused; leave BudgetName out",
                    )
                )
        return matches
