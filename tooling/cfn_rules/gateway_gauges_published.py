"""E9032: a policy on a gateway gauge has a gateway in the stack that publishes it every period."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates import gateway_metrics
from tooling.cfn_rules._scaling import (
    DEFAULT_GAUGE_INTERVAL,
    DEFAULT_UPSTREAM,
    ENGINE_GAUGES,
    customized_metrics,
    enabled,
    gateway_environments,
    number,
)

# Target tracking evaluates its metric per minute; a gateway writing less often leaves minutes with no
# data point, which the alarms treat as missing data rather than as load.
METRIC_PERIOD_SECONDS = 60


class GatewayGaugesPublished(CloudFormationLintRule):
    id = "E9032"
    shortdesc = "A tracked gateway gauge is published by a gateway in the stack"
    description = (
        "Target tracking needs a metric that has data: Application Auto Scaling's and EC2 Auto Scaling's "
        "alarms evaluate it minute by minute, and a metric nobody writes leaves them without data points, "
        "so the policy never scales. A policy on one of the gateway's gauges needs a gateway in the same "
        "template that writes it: gauges on (GATEWAY_GAUGE_METRICS), at least once a minute "
        "(GATEWAY_GAUGE_INTERVAL at most 60 s), and for vLLM's queue and KV cache, a gateway in front of "
        "vLLM (GATEWAY_UPSTREAM vllm), whose /metrics it reads."
    )
    source_url = "https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking.html"
    tags: ClassVar[list[str]] = ["resources", "applicationautoscaling", "autoscaling", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        tracked = [
            t
            for t in customized_metrics(cfn)
            if t.metric.get("Namespace") == gateway_metrics.NAMESPACE
            and t.metric.get("MetricName") in gateway_metrics.GAUGES
        ]
        if not tracked:
            return []
        publishers = []
        matches = []
        for path, env in gateway_environments(cfn):
            if not enabled(env.get("GATEWAY_GAUGE_METRICS")):
                continue
            interval = number(env.get("GATEWAY_GAUGE_INTERVAL"))
            interval = DEFAULT_GAUGE_INTERVAL if interval is None else interval
            if interval > METRIC_PERIOD_SECONDS:
                matches.append(
                    RuleMatch(
                        path,
                        f"{path[1]}: GATEWAY_GAUGE_INTERVAL {interval:g} s leaves minutes without the data "
                        f"points {tracked[0].policy} tracks; at most {METRIC_PERIOD_SECONDS}",
                    )
                )
                continue
            publishers.append(env.get("GATEWAY_UPSTREAM") or DEFAULT_UPSTREAM)
        for t in tracked:
            name = t.metric["MetricName"]
            if not publishers:
                reason = "no gateway in the template publishes the gauges (GATEWAY_GAUGE_METRICS)"
            elif name in ENGINE_GAUGES and "vllm" not in publishers:
                reason = "no gateway in the template reads vLLM (GATEWAY_UPSTREAM vllm)"
            else:
                continue
            matches.append(RuleMatch(t.path, f"{t.policy} tracks {name}, but {reason}"))
        return matches
