"""Target-tracking policies and the gateway metrics they track, as the scaling rules read them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cfnlint.template import Template

from templates import gateway_metrics
from tooling.cfn_rules._template import gateways, props

AAS_POLICY = "AWS::ApplicationAutoScaling::ScalingPolicy"
ASG_POLICY = "AWS::AutoScaling::ScalingPolicy"
_CONFIG = {AAS_POLICY: "TargetTrackingScalingPolicyConfiguration", ASG_POLICY: "TargetTrackingConfiguration"}
ENGINE_GAUGES = frozenset(
    {
        gateway_metrics.ENGINE_REQUESTS_WAITING,
        gateway_metrics.ENGINE_REQUESTS_RUNNING,
        gateway_metrics.ENGINE_KV_CACHE_USAGE,
    }
)
# The gateway's own defaults (inference_server/config.py) when a variable is not set.
DEFAULT_GAUGE_INTERVAL = 10.0
DEFAULT_UPSTREAM = "vllm"
DEFAULT_STACK = "local"


@dataclass(frozen=True)
class Tracked:
    policy: str
    path: list[str | int]
    metric: dict[str, Any]  # a CustomizedMetricSpecification

    @property
    def dimensions(self) -> list[dict[str, Any]]:
        found = self.metric.get("Dimensions") or []
        return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def customized_metrics(cfn: Template) -> Iterator[Tracked]:
    """Every target-tracking policy's CustomizedMetricSpecification (Application and EC2 Auto Scaling)."""
    for kind, key in _CONFIG.items():
        for name, res in cfn.get_resources([kind]).items():
            config = props(res).get(key)
            metric = config.get("CustomizedMetricSpecification") if isinstance(config, dict) else None
            if isinstance(metric, dict):
                yield Tracked(
                    name, ["Resources", name, "Properties", key, "CustomizedMetricSpecification"], metric
                )


def on_gateway_metric(tracked: Tracked) -> bool:
    """Whether the policy means one of the gateway's metrics (by its namespace or a gateway metric name)."""
    metric = tracked.metric
    return metric.get("Namespace") == gateway_metrics.NAMESPACE or metric.get("MetricName") in (
        *gateway_metrics.GAUGES,
        *gateway_metrics.USAGE_METRICS,
        gateway_metrics.TIME_TO_FIRST_TOKEN,
    )


def gateway_environments(cfn: Template) -> list[tuple[list[str | int], dict[str, Any]]]:
    return list(gateways(cfn))


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def enabled(value: Any) -> bool:
    """The gateway's reading of a boolean variable (absent: on)."""
    if value is None or value == "":
        return True
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
