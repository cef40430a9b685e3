"""E9039: Spot instances of an ECS cluster drain their tasks on the interruption notice."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._mixed import mixed_groups, template_data
from tooling.cfn_rules._template import text


class EcsSpotDraining(CloudFormationLintRule):
    id = "E9039"
    shortdesc = "Spot container instances drain on the two-minute interruption notice"
    description = (
        "EC2 gives a Spot instance two minutes' notice before it takes it back. The ECS agent only acts "
        "on it when ECS_ENABLE_SPOT_INSTANCE_DRAINING=true is in /etc/ecs/ecs.config: it then sets the "
        "instance DRAINING, so ECS deregisters its tasks from the load balancer and starts replacements "
        "elsewhere; without it the tasks die with the instance and their requests with them. A group "
        "whose mixed instances policy may launch Spot and whose user data joins an ECS cluster must set it."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/spot-instance-draining-linux-container.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "autoscaling", "spot"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for group in mixed_groups(cfn):
            if not group.may_run_spot:
                continue
            script = text(template_data(cfn, group.launch_template).get("UserData")) or ""
            if "ECS_CLUSTER=" in script and "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" not in script:
                matches.append(
                    RuleMatch(
                        ["Resources", group.launch_template, "Properties", "LaunchTemplateData", "UserData"],
                        f"{group.name} may launch Spot instances into an ECS cluster but "
                        f"{group.launch_template}'s user data does not set "
                        "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true: tasks would not drain on the interruption "
                        "notice",
                    )
                )
        return matches
