"""Scaling: target tracking on the spec's targets, its cooldowns, and its schedules.

ECS services and SageMaker variants scale through Application Auto Scaling and share one builder; an
EC2 autoscaling group has its own policy types and a five-field cron, because AWS made them differently.

The LLM-aware targets track what the gateway publishes (templates/gateway_metrics.py): its requests in
flight and vLLM's queue and KV cache, one EMF data point per task every few seconds under the one
dimension set [Stack]. CloudWatch's Average of a metric over a period is Sum / SampleCount of every data
point published to it (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html),
so with each task publishing its own value at the same interval, Average is the per-task average that
target tracking needs: "the value of the metric should decrease when capacity increases"
(https://docs.aws.amazon.com/autoscaling/application/APIReference/API_CustomizedMetricSpecification.html).
No metric math is needed, which would only be for dividing a service-wide total by a task count
(https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking-metric-math.html).
The policy names the metric with the dimensions it is published with, as the API requires ("If you
published your metric with dimensions, you must specify the same dimensions in your scaling policy").
"""

from __future__ import annotations

from typing import Any

from troposphere import Ref
from troposphere import applicationautoscaling as aas
from troposphere import autoscaling as asg

from templates import gateway_metrics
from templates.context import Stack
from tooling import cron

_ECS_METRICS = {
    "cpu_percent": "ECSServiceAverageCPUUtilization",
    "memory_percent": "ECSServiceAverageMemoryUtilization",
    "requests_per_target": "ALBRequestCountPerTarget",
}
_SAGEMAKER_METRICS = {
    "invocations_per_instance": "SageMakerVariantInvocationsPerInstance",
    # ConcurrentRequestsPerModel: the requests in a model container, queued ones included, a streamed
    # one until its last token, emitted every 10 s, so scale-out reacts within a minute
    # (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-add-code-define.html).
    "concurrent_requests_per_model": "SageMakerVariantConcurrentRequestsPerModelHighResolution",
}
# Spec target -> the gateway's gauge it tracks (validation says which target supports which).
GATEWAY_SIGNALS = {
    "requests_in_flight_per_task": gateway_metrics.REQUESTS_IN_FLIGHT,
    "queue_depth_per_task": gateway_metrics.ENGINE_REQUESTS_WAITING,
    "kv_cache_percent": gateway_metrics.ENGINE_KV_CACHE_USAGE,
}
GATEWAY_STATISTIC = "Average"


def _gateway_metric(module: Any, name: str) -> Any:
    """The per-task gauge `name` as `module` (aas or asg) names a customized metric."""
    return module.CustomizedMetricSpecification(
        Namespace=gateway_metrics.NAMESPACE,
        MetricName=GATEWAY_SIGNALS[name],
        # The gateway's GATEWAY_METRICS_STACK (templates/targets/shared.py) is this same value.
        Dimensions=[
            module.MetricDimension(Name=gateway_metrics.STACK_DIMENSION, Value=Ref("AWS::StackName"))
        ],
        Statistic=GATEWAY_STATISTIC,
    )


def add_application_scaling(
    stack: Stack,
    *,
    prefix: str,
    namespace: str,
    resource_id: Any,
    dimension: str,
    request_label: Any = None,
    minimum: int | None = None,
    maximum: int | None = None,
    targets: dict[str, int] | None = None,
    schedules: bool = True,
    depends_on: list[str] | None = None,
) -> aas.ScalableTarget:
    """A scalable target with one target-tracking policy per target and the spec's schedules."""
    scaling = stack.spec.scaling
    metrics = _SAGEMAKER_METRICS if namespace == "sagemaker" else _ECS_METRICS
    target = stack.add(
        aas.ScalableTarget(
            f"{prefix}ScalableTarget",
            ServiceNamespace=namespace,
            ResourceId=resource_id,
            ScalableDimension=dimension,
            MinCapacity=scaling.min if minimum is None else minimum,
            MaxCapacity=scaling.max if maximum is None else maximum,
            ScheduledActions=[
                aas.ScheduledAction(
                    ScheduledActionName=s.name,
                    Schedule=f"cron({cron.normalise(s.cron)})",
                    Timezone="Etc/UTC",
                    ScalableTargetAction=aas.ScalableTargetAction(MinCapacity=s.min, MaxCapacity=s.max),
                )
                for s in scaling.schedules
            ]
            if schedules and scaling.schedules
            else [],
            **({"DependsOn": depends_on} if depends_on else {}),
        )
    )
    chosen = targets if targets is not None else _spec_targets(stack)
    for name, value in sorted(chosen.items()):
        metric: dict[str, Any]
        if name in GATEWAY_SIGNALS:
            metric = {"CustomizedMetricSpecification": _gateway_metric(aas, name)}
        else:
            spec = aas.PredefinedMetricSpecification(PredefinedMetricType=metrics[name])
            if metrics[name] == "ALBRequestCountPerTarget":
                spec.ResourceLabel = request_label
            metric = {"PredefinedMetricSpecification": spec}
        stack.add(
            aas.ScalingPolicy(
                f"{prefix}{_camel(name)}Policy",
                PolicyName=f"{stack.name}-{name}",
                PolicyType="TargetTrackingScaling",
                ScalingTargetId=Ref(target),
                TargetTrackingScalingPolicyConfiguration=aas.TargetTrackingScalingPolicyConfiguration(
                    **metric,
                    TargetValue=float(value),
                    ScaleInCooldown=stack.spec.scaling.scale_in_cooldown,
                    ScaleOutCooldown=stack.spec.scaling.scale_out_cooldown,
                ),
            )
        )
    return target


def add_group_scaling(
    stack: Stack, group: asg.AutoScalingGroup, request_label: Any, headroom: int = 0
) -> None:
    """Target tracking and schedules for an EC2 autoscaling group.

    `headroom` instances are added to each schedule's non-zero max, as to the group's own MaxSize, so
    that a rolling update during the schedule can still start a new instance before it stops one.
    """
    # Requests and the gateway's gauges: host CPU does not follow a GPU server's load (validation
    # refuses cpu_percent here).
    metrics = {"requests_per_target": "ALBRequestCountPerTarget"}
    for name, value in sorted(_spec_targets(stack).items()):
        metric: dict[str, Any]
        if name in GATEWAY_SIGNALS:
            metric = {"CustomizedMetricSpecification": _gateway_metric(asg, name)}
        else:
            spec = asg.PredefinedMetricSpecification(PredefinedMetricType=metrics[name])
            if name == "requests_per_target":
                spec.ResourceLabel = request_label
            metric = {"PredefinedMetricSpecification": spec}
        stack.add(
            asg.ScalingPolicy(
                f"Group{_camel(name)}Policy",
                AutoScalingGroupName=Ref(group),
                PolicyType="TargetTrackingScaling",
                # Instance warm-up covers image pull and model load before its metrics count.
                EstimatedInstanceWarmup=900,
                TargetTrackingConfiguration=asg.TargetTrackingConfiguration(
                    **metric, TargetValue=float(value)
                ),
            )
        )
    for schedule in stack.spec.scaling.schedules:
        stack.add(
            asg.ScheduledAction(
                f"Schedule{_camel(schedule.name)}",
                AutoScalingGroupName=Ref(group),
                Recurrence=unix_cron(schedule.cron),
                TimeZone="Etc/UTC",
                MinSize=schedule.min,
                MaxSize=schedule.max + headroom if schedule.max else 0,
            )
        )


def unix_cron(expression: str) -> str:
    """AWS six-field cron to the five fields EC2 Auto Scaling takes (validation ensures it converts)."""
    minutes, hours, dom, month, dow, _year = cron.normalise(expression).split(" ")
    if dow != "?":
        # AWS numbers days 1-7 from Sunday; Unix cron 0-6.
        dow = "".join(str(int(c) - 1) if c.isdigit() else c for c in dow)
    return " ".join("*" if f == "?" else f for f in (minutes, hours, dom, month, dow))


def _spec_targets(stack: Stack) -> dict[str, int]:
    target = stack.spec.scaling.target
    if target is None:
        return {}
    return {name: value for name, value in target if value is not None}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
