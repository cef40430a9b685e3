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

# The alarms target tracking creates evaluate one-minute periods; a gateway writing less often leaves
# periods with no data point: missing data puts the alarms in INSUFFICIENT_DATA, in which Application
# Auto Scaling does not scale until data points come back (the overview's considerations).
METRIC_PERIOD_SECONDS = 60


class GatewayGaugesPublished(CloudFormationLintRule):
    id = "E9032"
    shortdesc = "A tracked gateway gauge is published by a gateway in the stack"
    description = (
        "Target tracking needs a metric that has data: when its metric is missing data points the "
        "policy's alarms go to INSUFFICIENT_DATA and no scaling happens until data points return, so a "
        "metric nobody writes, or one written less often than the alarms' one-minute period, never "
        "scales (or scales in fits). A policy on one of the gateway's gauges needs a gateway in the same "
        "template that writes it: gauges on (GATEWAY_GAUGE_METRICS), at least once a minute "
        "(GATEWAY_GAUGE_INTERVAL at most 60 s), and for vLLM's queue and KV cache, a gateway in front of "
        "vLLM (GATEWAY_UPSTREAM vllm), whose /metrics it reads. RequestsInFlight is counted per process: "
        "with GATEWAY_WORKERS above 1 its Average would be per process, not per task."
    )
    source_url = "https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html"
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
            workers = number(env.get("GATEWAY_WORKERS"))
            per_process = [
                t.policy for t in tracked if t.metric.get("MetricName") == gateway_metrics.REQUESTS_IN_FLIGHT
            ]
            if workers is not None and workers > 1 and per_process:
                matches.append(
                    RuleMatch(
                        path,
                        f"{path[1]}: GATEWAY_WORKERS {workers:g}: each process publishes its own "
                        f"RequestsInFlight, so {per_process[0]} would track a per-process average, not the "
                        "task's; run one worker",
                    )
                )
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
