"""E9042: a dashboard reads only the gateway metrics the stack's gateway publishes, by its dimensions."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates import gateway_metrics as gw
from tooling.cfn_rules._dashboard import Source, bodies
from tooling.cfn_rules._scaling import DEFAULT_UPSTREAM, ENGINE_GAUGES, enabled
from tooling.cfn_rules._template import gateways

# The dimension sets the gateway writes each metric with (templates/gateway_metrics.py).
PER_REQUEST = (frozenset({gw.STACK_DIMENSION}), frozenset({gw.STACK_DIMENSION, gw.CLIENT_DIMENSION}))
DIMENSION_SETS = {
    **{name: PER_REQUEST for name in (*gw.USAGE_METRICS, gw.TIME_TO_FIRST_TOKEN)},
    **{name: (frozenset({gw.STACK_DIMENSION}),) for name in gw.GAUGES},
}
STACK_NAME = Source("pseudo", "AWS::StackName")


def published(cfn: Template) -> set[str]:
    """The gateway metrics this template's gateways write with this stack's name as Stack: the
    per-request ones; the gauges unless GATEWAY_GAUGE_METRICS is off; the engine's only from a gateway
    in front of vLLM (GATEWAY_UPSTREAM vllm), whose /metrics it reads (inference_server/engine_metrics.py)."""
    names: set[str] = set()
    for _, env in gateways(cfn):
        if env.get("GATEWAY_METRICS_STACK") != {"Ref": "AWS::StackName"}:
            continue
        names |= {*gw.USAGE_METRICS, gw.TIME_TO_FIRST_TOKEN}
        if enabled(env.get("GATEWAY_GAUGE_METRICS")):
            names.add(gw.REQUESTS_IN_FLIGHT)
            if env.get("GATEWAY_UPSTREAM", DEFAULT_UPSTREAM) == "vllm":
                names |= ENGINE_GAUGES
    return names


class DashboardGatewayMetrics(CloudFormationLintRule):
    id = "E9042"
    shortdesc = "Dashboards read only the gateway metrics the stack publishes"
    description = (
        f"The gateway writes its metrics in embedded metric format to namespace {gw.NAMESPACE}, with the "
        "dimension sets templates/gateway_metrics.py lists ([Stack] for gauges, [Stack] and [Stack, Client] "
        "per request) and Stack set from GATEWAY_METRICS_STACK. CloudWatch draws nothing for a metric "
        "name or dimension set that was never written, and silently: a dashboard metric of the gateway "
        "must be one it publishes, with one of its dimension sets, Stack ${AWS::StackName}, in a stack "
        "whose gateway sets GATEWAY_METRICS_STACK to that name and writes that metric (gauges unless "
        "GATEWAY_GAUGE_METRICS is off, the engine's queue and KV cache only in front of vLLM)."
    )
    source_url = (
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/"
        "CloudWatch_Embedded_Metric_Format_Specification.html"
    )
    tags: ClassVar[list[str]] = ["resources", "cloudwatch", "dashboard", "metrics"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        publishes: set[str] | None = None
        for body in bodies(cfn):
            for metric in body.metrics():
                if metric.namespace != gw.NAMESPACE:
                    continue
                where = f"{body.logical_id}: widget {metric.widget} {metric.name}"
                if publishes is None:
                    publishes = published(cfn)
                if not publishes:
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{where}: no gateway in this stack publishes {gw.NAMESPACE} with this stack's "
                            "name (GATEWAY_METRICS_STACK: Ref AWS::StackName)",
                        )
                    )
                elif metric.name in DIMENSION_SETS and metric.name not in publishes:
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{where}: no gateway in this stack writes it (gauges need GATEWAY_GAUGE_METRICS "
                            "on, the engine's a gateway in front of vLLM, GATEWAY_UPSTREAM vllm)",
                        )
                    )
                sets = DIMENSION_SETS.get(metric.name)
                if sets is None:
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{where}: the gateway publishes no such metric; it publishes "
                            f"{', '.join(sorted(DIMENSION_SETS))}",
                        )
                    )
                    continue
                if frozenset(metric.dimensions) not in sets:
                    shown = " or ".join("[" + ", ".join(sorted(s)) + "]" for s in sets)
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{where}: dimensions [{', '.join(sorted(metric.dimensions))}] are not the ones "
                            f"it is published with ({shown})",
                        )
                    )
                elif metric.dimensions.get(gw.STACK_DIMENSION) != STACK_NAME:
                    matches.append(
                        RuleMatch(
                            body.path,
                            f"{where}: Stack must be ${{AWS::StackName}}, the name this stack's gateway "
                            "publishes with",
                        )
                    )
        return matches
