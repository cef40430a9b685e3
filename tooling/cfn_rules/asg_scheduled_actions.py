"""E9015: stack updates leave a scheduled Auto Scaling group's size to its schedule."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, target, truthy


class AsgScheduledActions(CloudFormationLintRule):
    id = "E9015"
    shortdesc = "Scheduled Auto Scaling groups keep their size through stack updates"
    description = (
        "On a stack update CloudFormation sets an Auto Scaling group's MinSize, MaxSize and desired "
        "capacity back to the template's values even while a scheduled action is in effect (a deploy at "
        "night starts the instances the schedule stopped). A group with scheduled actions needs UpdatePolicy "
        "AutoScalingScheduledAction IgnoreUnmodifiedGroupSizeProperties true, and a rolling update must "
        "suspend ScheduledActions while it runs."
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-as-scheduledaction.html"
    )
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "updatepolicy", "schedules"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        scheduled = {
            target(props(res).get("AutoScalingGroupName"))
            for res in cfn.get_resources(["AWS::AutoScaling::ScheduledAction"]).values()
        }
        matches = []
        for name, res in cfn.get_resources(["AWS::AutoScaling::AutoScalingGroup"]).items():
            if name not in scheduled:
                continue
            policy = res.get("UpdatePolicy") or {}
            keep = policy.get("AutoScalingScheduledAction") or {}
            if not truthy(keep.get("IgnoreUnmodifiedGroupSizeProperties")):
                matches.append(
                    RuleMatch(
                        ["Resources", name, "UpdatePolicy"] if policy else ["Resources", name],
                        f"{name} has scheduled actions: set UpdatePolicy AutoScalingScheduledAction "
                        "IgnoreUnmodifiedGroupSizeProperties true, or each stack update resets its size",
                    )
                )
            rolling = policy.get("AutoScalingRollingUpdate")
            suspended = as_list((rolling or {}).get("SuspendProcesses"))
            if isinstance(rolling, dict) and "ScheduledActions" not in suspended:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "UpdatePolicy", "AutoScalingRollingUpdate"],
                        f"{name} has scheduled actions and rolling updates: add ScheduledActions to "
                        "SuspendProcesses",
                    )
                )
        return matches
