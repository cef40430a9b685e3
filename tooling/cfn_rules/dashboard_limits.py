"""E9041: a dashboard stays within CloudWatch's widget and metric quotas."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._dashboard import bodies

MAX_WIDGETS = 500
# The lower of the figures AWS has published for these quotas (100 per widget and 500 per dashboard;
# later pages give 500 and 2,500): a dashboard within them is accepted under either.
MAX_METRICS_PER_WIDGET = 100
MAX_METRICS_PER_DASHBOARD = 500


class DashboardLimits(CloudFormationLintRule):
    id = "E9041"
    shortdesc = "A dashboard stays within CloudWatch's quotas"
    description = (
        "A dashboard body holds at most 500 widgets (Dashboard Body Structure), and CloudWatch caps the "
        "metrics of one widget and of the whole dashboard, counting the metrics that metric math reads "
        "even when they are not drawn; these quotas cannot be raised. Every row of a widget's metrics "
        "array counts, expressions included. The rule holds the lowest published caps: 100 a widget, "
        "500 a dashboard."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
    tags: ClassVar[list[str]] = ["resources", "cloudwatch", "dashboard", "quotas"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for body in bodies(cfn):
            widgets = body.widgets()
            if len(widgets) > MAX_WIDGETS:
                matches.append(
                    RuleMatch(
                        body.path,
                        f"{body.logical_id} has {len(widgets)} widgets; a dashboard holds at most "
                        f"{MAX_WIDGETS}",
                    )
                )
            total = 0
            for index, properties in body.metric_widgets():
                count = len(properties.get("metrics") or [])
                total += count
                if count > MAX_METRICS_PER_WIDGET:
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{body.logical_id}: widget {index} has {count} metrics; at most "
                            f"{MAX_METRICS_PER_WIDGET} a widget",
                        )
                    )
            if total > MAX_METRICS_PER_DASHBOARD:
                matches.append(
                    RuleMatch(
                        body.path,
                        f"{body.logical_id} has {total} metrics; at most {MAX_METRICS_PER_DASHBOARD} "
                        "a dashboard",
                    )
                )
        return matches
