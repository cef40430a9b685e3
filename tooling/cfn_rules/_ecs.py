"""How ECS services, capacity providers and Auto Scaling groups in one template refer to each other."""

from __future__ import annotations

from typing import Any

from cfnlint.template import Template

from tooling.cfn_rules._template import props, resource, target

ASG = "AWS::AutoScaling::AutoScalingGroup"
CAPACITY_PROVIDER = "AWS::ECS::CapacityProvider"
ASSOCIATIONS = "AWS::ECS::ClusterCapacityProviderAssociations"


def capacity_provider_group(cfn: Template, provider: str) -> str | None:
    """The Auto Scaling group (logical id) behind a capacity provider in this template."""
    group = props(resource(cfn, provider, CAPACITY_PROVIDER)).get("AutoScalingGroupProvider", {})
    asg = target(group.get("AutoScalingGroupArn")) if isinstance(group, dict) else None
    return asg if resource(cfn, asg, ASG) else None


def associations_of(cfn: Template, cluster: str | None) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in cfn.get_resources([ASSOCIATIONS]).items()
        if cluster is not None and target(props(res).get("Cluster")) == cluster
    }


def service_providers(cfn: Template, service: dict[str, Any]) -> list[str]:
    """The capacity providers (logical ids) a service places tasks with: its own strategy, else the
    default strategy of its cluster's associations."""
    strategy = props(service).get("CapacityProviderStrategy")
    if not strategy:
        cluster = target(props(service).get("Cluster"))
        strategy = [
            item
            for res in associations_of(cfn, cluster).values()
            for item in props(res).get("DefaultCapacityProviderStrategy", []) or []
        ]
    found = [target(item.get("CapacityProvider")) for item in strategy or [] if isinstance(item, dict)]
    return [p for p in found if resource(cfn, p, CAPACITY_PROVIDER)]
