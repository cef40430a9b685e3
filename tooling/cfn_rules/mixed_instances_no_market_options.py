"""E9035: a launch template under a mixed instances policy does not request Spot itself."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._mixed import mixed_groups, template_data


class MixedInstancesNoMarketOptions(CloudFormationLintRule):
    id = "E9035"
    shortdesc = "Mixed instances groups buy Spot through their policy, not the template"
    description = (
        "In an Auto Scaling group with a mixed instances policy, the InstancesDistribution decides which "
        "instances are On-Demand and which are Spot. Auto Scaling refuses to create or update the group "
        'when its launch template sets InstanceMarketOptions ("You cannot use a launch template that is '
        "set to request Spot Instances (InstanceMarketOptions) when you configure an Auto Scaling group "
        'with a mixed instances policy"), so the stack fails. Leave InstanceMarketOptions out of the '
        "template and set the Spot share in InstancesDistribution."
    )
    source_url = (
        "https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-mixed-instances-groups.html"
    )
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "ec2", "spot"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for group in mixed_groups(cfn):
            if "InstanceMarketOptions" in template_data(cfn, group.launch_template):
                matches.append(
                    RuleMatch(
                        [
                            "Resources",
                            group.launch_template,
                            "Properties",
                            "LaunchTemplateData",
                            "InstanceMarketOptions",
                        ],
                        f"{group.launch_template} sets InstanceMarketOptions and {group.name} launches it "
                        "with a mixed instances policy, which Auto Scaling refuses; remove it and set "
                        "OnDemandPercentageAboveBaseCapacity in InstancesDistribution",
                    )
                )
        return matches
