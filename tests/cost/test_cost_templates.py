"""The estimator counts what the stacks create: checked against the templates themselves, so that a
template change that adds a NAT gateway, an endpoint or a gateway task fails here until it is priced."""

from __future__ import annotations

from typing import Any

import pytest

from templates import stack
from tests.cost import EXTERNAL, make_spec
from tooling import cost
from tooling.spec import Deployment

HOUR_MONTH = 730

SPECS = {
    "ecs-gpu, endpoints": make_spec(network={"vpc_endpoints": True, "nat_gateways": 2}),
    "ec2, one NAT": make_spec(compute={"service": "ec2", "instance_type": "g6.xlarge"}),
    "sagemaker, endpoints": make_spec(
        compute={"service": "sagemaker", "instance_type": "ml.g5.xlarge"},
        scaling={"min": 1, "max": 6, "target": {"invocations_per_instance": 60}},
        network={"vpc_endpoints": True, "nat_gateways": 0},
    ),
    "fargate, no keys": make_spec(
        engine=EXTERNAL, compute={"service": "ecs-fargate"}, auth={"api_keys": False}
    ),
}


def resources(spec: Deployment, environment: str, kind: str) -> list[dict[str, Any]]:
    template = stack.build(spec, environment).to_dict()
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


@pytest.mark.parametrize("label", sorted(SPECS))
@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_counted_resources_match_the_template(label: str, environment: str) -> None:
    spec = SPECS[label]
    e = cost.estimate(spec, environment)
    table = cost.prices()

    nats = len(resources(spec, environment, "AWS::EC2::NatGateway"))
    assert e.components["nat_gateway"] == pytest.approx(nats * 0.045 * HOUR_MONTH, abs=0.005)
    # Public IPv4: the NAT gateways' Elastic IPs and, when internet-facing, one per ALB node (AZ).
    eips = len(resources(spec, environment, "AWS::EC2::EIP"))
    (lb,) = resources(spec, environment, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    alb_addresses = len(lb["Subnets"]) if lb["Scheme"] == "internet-facing" else 0
    assert e.components["public_ipv4"] == pytest.approx(
        (eips + alb_addresses) * 0.005 * HOUR_MONTH, abs=0.005
    )
    interface = [
        p
        for p in resources(spec, environment, "AWS::EC2::VPCEndpoint")
        if p["VpcEndpointType"] == "Interface"
    ]
    hours = len(interface) * 2 * 0.01 * HOUR_MONTH
    assert e.components["vpc_endpoints"] == pytest.approx(
        hours, abs=0.1 if interface else 0.005
    )  # + logs GB processed
    # Alarms: one alarm metric per metric an alarm reads, two alarms per target-tracking policy.
    alarm_metrics = sum(
        len([m for m in a.get("Metrics", []) if "MetricStat" in m]) or 1
        for a in resources(spec, environment, "AWS::CloudWatch::Alarm")
    )
    policies = [
        *resources(spec, environment, "AWS::ApplicationAutoScaling::ScalingPolicy"),
        *resources(spec, environment, "AWS::AutoScaling::ScalingPolicy"),
    ]
    tracking = sum(p.get("PolicyType") == "TargetTrackingScaling" for p in policies)
    scaling_of_spec = tracking - (1 if spec.compute.service == "sagemaker" else 0)  # the gateway's own
    assert e.components["alarms"] == pytest.approx((alarm_metrics + 2 * scaling_of_spec) * 0.10, abs=0.005)
    secrets = len(resources(spec, environment, "AWS::SecretsManager::Secret"))
    assert e.components["secrets"] == pytest.approx(
        secrets * table["regions"]["us-east-1"]["services"]["secret_month"]["usd"]
    )
    assert len(resources(spec, environment, "AWS::KMS::Key")) == 1
    assert len(resources(spec, environment, "AWS::ElasticLoadBalancingV2::LoadBalancer")) == 1


@pytest.mark.parametrize("environment", ["prod", "staging"])
def test_sagemaker_gateway_size_and_count_match_the_template(environment: str) -> None:
    spec = SPECS["sagemaker, endpoints"]
    (task,) = resources(spec, environment, "AWS::ECS::TaskDefinition")
    target = next(
        p
        for p in resources(spec, environment, "AWS::ApplicationAutoScaling::ScalableTarget")
        if p["ScalableDimension"] == "ecs:service:DesiredCount"
    )
    size = cost.SAGEMAKER_GATEWAY
    assert (int(task["Cpu"]), int(task["Memory"])) == (size.cpu, size.memory)
    assert task["RuntimePlatform"]["CpuArchitecture"] == size.architecture.upper()
    assert task["EphemeralStorage"]["SizeInGiB"] == size.ephemeral_storage_gib
    task_month = cost.fargate_task_hour(size) * HOUR_MONTH
    e = cost.estimate(spec, environment)
    assert e.components["gateway"] == pytest.approx(target["MinCapacity"] * task_month, abs=0.005)
    assert e.components_max["gateway"] == pytest.approx(target["MaxCapacity"] * task_month, abs=0.005)
