"""E9034: the Stack dimension a scaling policy names is the one the stack's gateways publish with."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates import gateway_metrics
from tooling.cfn_rules._scaling import DEFAULT_STACK, customized_metrics, gateway_environments

STACK_VARIABLE = "GATEWAY_METRICS_STACK"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class GatewayMetricStackDimension(CloudFormationLintRule):
    id = "E9034"
    shortdesc = "A gateway metric's Stack dimension matches what the gateways publish"
    description = (
        "A metric is its namespace, name and dimension values: a policy that names Stack=prod-a while the "
        "gateways write Stack=prod-b tracks a metric nobody publishes, and its alarms never see data. The "
        f"gateways write the Stack dimension from {STACK_VARIABLE} ('local' when unset), so a policy on a "
        "gateway metric must name exactly that value (the templates use the stack's own name for both)."
    )
    source_url = (
        "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CustomizedMetricSpecification.html"
    )
    tags: ClassVar[list[str]] = ["resources", "applicationautoscaling", "autoscaling", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        gateways = gateway_environments(cfn)
        if not gateways:
            return []
        published = [env.get(STACK_VARIABLE, DEFAULT_STACK) for _, env in gateways]
        matches = []
        for tracked in customized_metrics(cfn):
            if tracked.metric.get("Namespace") != gateway_metrics.NAMESPACE:
                continue
            for index, dimension in enumerate(tracked.dimensions):
                if dimension.get("Name") != gateway_metrics.STACK_DIMENSION:
                    continue
                value = dimension.get("Value")
                if value in published:
                    continue
                matches.append(
                    RuleMatch(
                        [*tracked.path, "Dimensions", index, "Value"],
                        f"{tracked.policy} tracks Stack={_shown(value)}, but the gateways publish "
                        f"Stack={', '.join(sorted({_shown(p) for p in published}))} ({STACK_VARIABLE})",
                    )
                )
        return matches
