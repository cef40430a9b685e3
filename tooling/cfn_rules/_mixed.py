"""Auto Scaling groups with a mixed instances policy, read the way the E9035-E9039 rules need them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cfnlint.template import Template

from tooling.cfn_rules._ecs import ASG
from tooling.cfn_rules._template import integer, props, resource, target

LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"


@dataclass(frozen=True)
class MixedGroup:
    name: str
    policy: dict[str, Any]
    launch_template: str | None  # logical id, when the template is in this stack
    overrides: list[str | None]  # each override's literal InstanceType (None: not a literal)

    @property
    def distribution(self) -> dict[str, Any]:
        found = self.policy.get("InstancesDistribution")
        return found if isinstance(found, dict) else {}

    @property
    def may_run_spot(self) -> bool:
        """Whether any capacity can be Spot: the on-demand share above the base is below 100 %
        (AWS's default for OnDemandPercentageAboveBaseCapacity is 100)."""
        share = integer(self.distribution.get("OnDemandPercentageAboveBaseCapacity", 100))
        return share is not None and share < 100

    def path(self, *parts: str | int) -> list[str | int]:
        return ["Resources", self.name, "Properties", "MixedInstancesPolicy", *parts]


def mixed_groups(cfn: Template) -> Iterator[MixedGroup]:
    for name, res in cfn.get_resources([ASG]).items():
        policy = props(res).get("MixedInstancesPolicy")
        if not isinstance(policy, dict):
            continue
        launch = policy.get("LaunchTemplate") if isinstance(policy.get("LaunchTemplate"), dict) else {}
        spec = launch.get("LaunchTemplateSpecification") or {}
        template = target(spec.get("LaunchTemplateId")) if isinstance(spec, dict) else None
        overrides = [
            o.get("InstanceType") if isinstance(o.get("InstanceType"), str) else None
            for o in launch.get("Overrides", []) or []
            if isinstance(o, dict)
        ]
        yield MixedGroup(
            name, policy, template if resource(cfn, template, LAUNCH_TEMPLATE) else None, overrides
        )


def template_data(cfn: Template, logical_id: str | None) -> dict[str, Any]:
    found = props(resource(cfn, logical_id, LAUNCH_TEMPLATE)).get("LaunchTemplateData")
    return found if isinstance(found, dict) else {}
