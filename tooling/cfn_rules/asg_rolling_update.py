"""E9008: a rolling update of an Auto Scaling group waits for healthy instances and keeps serving."""

from __future__ import annotations

import re
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import integer, props, truthy

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


def seconds(duration: object) -> int | None:
    """An ISO 8601 PT#H#M#S duration in seconds."""
    found = _DURATION.match(duration) if isinstance(duration, str) else None
    if not found or duration == "PT":
        return None
    h, m, s = (int(g or 0) for g in found.groups())
    return h * 3600 + m * 60 + s


class AsgRollingUpdate(CloudFormationLintRule):
    id = "E9008"
    shortdesc = "Rolling updates wait on signals and keep an instance in service"
    description = (
        "Without WaitOnResourceSignals CloudFormation counts a replacement instance as done when it "
        "launches, so a bad image rolls across the whole group; the group also needs a CreationPolicy "
        "ResourceSignal so its first instances signal too, and a PauseTime (the signal timeout) no shorter "
        "than the health-check grace period. MinInstancesInService must be below MaxSize so CloudFormation "
        "can replace an instance, and at least 1 when the group always runs an instance, or every update is "
        "an outage."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatepolicy.html"
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "updatepolicy", "creationpolicy"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::AutoScaling::AutoScalingGroup"]).items():
            rolling = (res.get("UpdatePolicy") or {}).get("AutoScalingRollingUpdate")
            if not isinstance(rolling, dict):
                continue
            path = ["Resources", name, "UpdatePolicy", "AutoScalingRollingUpdate"]
            p = props(res)
            if not truthy(rolling.get("WaitOnResourceSignals")):
                matches.append(
                    RuleMatch(
                        path,
                        f"{name}: rolling updates need WaitOnResourceSignals true (cfn-signal once an "
                        "instance is healthy), or failures roll across the group",
                    )
                )
            if not (res.get("CreationPolicy") or {}).get("ResourceSignal"):
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        f"{name}: a group updated on signals needs a CreationPolicy "
                        "ResourceSignal, so creating it waits for healthy instances too",
                    )
                )
            grace = integer(p.get("HealthCheckGracePeriod", 0)) or 0
            pause = seconds(rolling.get("PauseTime", "PT0S"))
            if pause is None or pause < grace:
                matches.append(
                    RuleMatch(
                        [*path, "PauseTime"] if "PauseTime" in rolling else path,
                        f"{name}: PauseTime {rolling.get('PauseTime', 'PT0S')} is shorter than the "
                        f"HealthCheckGracePeriod of {grace} s; set it to at least PT{grace}S",
                    )
                )
            kept = integer(rolling.get("MinInstancesInService", 0))
            max_size, min_size = integer(p.get("MaxSize")), integer(p.get("MinSize"))
            if kept is not None and max_size is not None and kept >= max_size:
                matches.append(
                    RuleMatch(
                        [*path, "MinInstancesInService"],
                        f"{name}: MinInstancesInService {kept} must be less than MaxSize {max_size}, or "
                        "CloudFormation cannot replace an instance",
                    )
                )
            if kept == 0 and min_size is not None and min_size >= 1:
                matches.append(
                    RuleMatch(
                        [*path, "MinInstancesInService"] if "MinInstancesInService" in rolling else path,
                        f"{name}: MinInstancesInService 0 with MinSize {min_size} stops serving on every "
                        "update; set it to at least 1 (with MaxSize above it)",
                    )
                )
        return matches
