"""E9036: the launch template's instance type is one its group's overrides launch."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._mixed import mixed_groups, template_data


class MixedInstancesTemplateType(CloudFormationLintRule):
    id = "E9036"
    shortdesc = "A launch template's InstanceType is among its group's overrides"
    description = (
        "When a mixed instances policy lists instance types in its overrides, Auto Scaling launches those "
        "and ignores the InstanceType of the launch template. A template that names another type says "
        "something that never runs: sizing, quotas and costs read from it are wrong, and removing the "
        "overrides later would silently switch the group to it. Name the first override (the highest "
        "priority) in the template, or no type at all."
    )
    source_url = "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LaunchTemplateOverrides.html"
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "ec2"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for group in mixed_groups(cfn):
            named = template_data(cfn, group.launch_template).get("InstanceType")
            types = [t for t in group.overrides if t is not None]
            if not isinstance(named, str) or not types or None in group.overrides or named in types:
                continue
            matches.append(
                RuleMatch(
                    ["Resources", group.launch_template, "Properties", "LaunchTemplateData", "InstanceType"],
                    f"{group.launch_template} names {named} but {group.name} launches only its overrides "
                    f"({', '.join(types)}); set InstanceType to {types[0]}",
                )
            )
        return matches
