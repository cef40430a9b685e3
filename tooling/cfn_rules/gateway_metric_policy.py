"""E9030: a scaling policy on a gateway metric tracks a per-task gauge the gateway publishes, as published."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates import gateway_metrics
from tooling.cfn_rules._scaling import customized_metrics, on_gateway_metric

PUBLISHED_DIMENSIONS = [gateway_metrics.STACK_DIMENSION]


class GatewayMetricPolicy(CloudFormationLintRule):
    id = "E9030"
    shortdesc = "Scaling on a gateway metric names a gauge the gateway publishes"
    description = (
        "A target-tracking policy's customized metric must be one that exists: the same namespace, name and "
        "dimensions it is published with (AWS: if you published your metric with dimensions, you must "
        "specify the same dimensions in your scaling policy), and it must change in inverse proportion to "
        "capacity. The gateway publishes its per-task gauges (templates/gateway_metrics.GAUGES) in "
        f"{gateway_metrics.NAMESPACE} with the one dimension set [Stack]; their Average over the tasks' "
        "data points is the per-task load. Its usage metrics are per-client sums, which do not fall as "
        "tasks are added, and any other name or dimension set is a metric nobody publishes."
    )
    source_url = "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_CustomizedMetricSpecification.html"
    tags: ClassVar[list[str]] = ["resources", "applicationautoscaling", "autoscaling", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for tracked in customized_metrics(cfn):
            if not on_gateway_metric(tracked):
                continue
            metric, policy = tracked.metric, tracked.policy
            name, namespace = metric.get("MetricName"), metric.get("Namespace")
            problems = []
            if namespace != gateway_metrics.NAMESPACE:
                problems.append(f"namespace {namespace!r} is not the gateway's {gateway_metrics.NAMESPACE}")
            if name not in gateway_metrics.GAUGES:
                problems.append(
                    f"{name!r} is not a per-task gauge the gateway publishes "
                    f"({', '.join(gateway_metrics.GAUGES)})"
                )
            dimensions = [d.get("Name") for d in tracked.dimensions]
            if dimensions != PUBLISHED_DIMENSIONS:
                problems.append(f"dimensions {dimensions} are not the published {PUBLISHED_DIMENSIONS}")
            if metric.get("Statistic") != "Average":
                problems.append(
                    f"statistic {metric.get('Statistic')!r} is not Average (the per-task mean of the tasks' "
                    "data points)"
                )
            if problems:
                message = f"{policy} tracks no metric the gateway publishes: " + "; ".join(problems)
                matches.append(RuleMatch(tracked.path, message))
        return matches
