"""The LLM-aware scaling targets as rendered: target tracking on what the gateway and SageMaker publish.

The gateway side (that it writes these very metrics) is tested in
tests/inference_server/test_gateway_engine_metrics.py, against a fake engine's vLLM-shaped /metrics.
"""

from __future__ import annotations

from typing import Any

import pytest

from templates import gateway_metrics
from templates.autoscaling import GATEWAY_SIGNALS
from tests.templates.conftest import Built

STACK_DIMENSION = [{"Name": "Stack", "Value": {"Ref": "AWS::StackName"}}]


def _policies(item: Built, kind: str) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in item.of_type(kind).items()}


def _gateway_env(item: Built) -> dict[str, Any]:
    (task,) = item.of_type("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_queue_depth_per_task_tracks_the_gateways_engine_queue_gauge(built: dict[str, Built]) -> None:
    item = built["dev-gpu-llm-signals"]
    policies = _policies(item, "AWS::ApplicationAutoScaling::ScalingPolicy")
    config = policies["ServiceQueueDepthPerTaskPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["CustomizedMetricSpecification"] == {
        "Namespace": "deployctl/Gateway",
        "MetricName": "EngineRequestsWaiting",
        "Dimensions": STACK_DIMENSION,
        "Statistic": "Average",
    }
    assert config["TargetValue"] == 4.0
    assert "PredefinedMetricSpecification" not in config
    # One policy per signal, each on its own gauge; the ECS service is what they scale.
    tracked = {
        name: p["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["MetricName"]
        for name, p in policies.items()
    }
    assert tracked == {
        "ServiceQueueDepthPerTaskPolicy": gateway_metrics.ENGINE_REQUESTS_WAITING,
        "ServiceKvCachePercentPolicy": gateway_metrics.ENGINE_KV_CACHE_USAGE,
        "ServiceRequestsInFlightPerTaskPolicy": gateway_metrics.REQUESTS_IN_FLIGHT,
    }
    (target,) = item.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["Properties"]["ScalableDimension"] == "ecs:service:DesiredCount"


def test_the_gateway_publishes_under_the_dimension_value_the_policies_name(built: dict[str, Built]) -> None:
    env = _gateway_env(built["dev-gpu-llm-signals"])
    assert env["GATEWAY_METRICS_STACK"] == {"Ref": "AWS::StackName"}
    # The KV gauge's vLLM name depends on the release the image runs.
    assert env["ENGINE_VERSION"] == built["dev-gpu-llm-signals"].deployment.spec.engine.version


def test_an_ec2_group_tracks_the_gauge_with_ec2_auto_scalings_own_policy(built: dict[str, Built]) -> None:
    item = built["dev-ec2-queue-depth"]
    (policy,) = _policies(item, "AWS::AutoScaling::ScalingPolicy").values()
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingConfiguration"] == {
        "CustomizedMetricSpecification": {
            "Namespace": "deployctl/Gateway",
            "MetricName": "EngineRequestsWaiting",
            "Dimensions": STACK_DIMENSION,
            "Statistic": "Average",
        },
        "TargetValue": 2.0,
    }


def test_fargate_tracks_the_gateways_requests_in_flight(built: dict[str, Built]) -> None:
    policies = _policies(built["prod-fargate-public"], "AWS::ApplicationAutoScaling::ScalingPolicy")
    config = policies["ServiceRequestsInFlightPerTaskPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["CustomizedMetricSpecification"]["MetricName"] == "RequestsInFlight"
    assert config["TargetValue"] == 200.0


def test_sagemaker_tracks_its_high_resolution_concurrency_metric_on_the_variant(
    built: dict[str, Built],
) -> None:
    item = built["prod-sagemaker-multi"]
    policies = _policies(item, "AWS::ApplicationAutoScaling::ScalingPolicy")
    config = policies["EndpointConcurrentRequestsPerModelPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    }
    assert config["TargetValue"] == 8.0
    scalable = item.resources["EndpointScalableTarget"]["Properties"]
    assert scalable["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert policies["EndpointConcurrentRequestsPerModelPolicy"]["ScalingTargetId"] == {
        "Ref": "EndpointScalableTarget"
    }


def test_every_gateway_signal_is_a_gauge_the_gateway_publishes() -> None:
    assert set(GATEWAY_SIGNALS.values()) <= set(gateway_metrics.GAUGES)


@pytest.mark.parametrize("stack", ["dev-gpu-llm-signals", "prod-fargate-public"])
def test_the_gateways_drain_ends_before_ecs_kills_the_container(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    (task,) = item.of_type("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = _gateway_env(item)
    stop, grace = container["StopTimeout"], float(env["GATEWAY_SHUTDOWN_GRACE"])
    assert grace < stop
    if "ENGINE_MODEL" in env:
        # The supervisor waits up to its grace for the gateway, then as long again for vLLM.
        supervisor = float(env["SUPERVISOR_GRACE"])
        assert grace < supervisor and 2 * supervisor < stop
    else:
        assert "SUPERVISOR_GRACE" not in env
