"""E9004: an ECS service on its own Auto Scaling group can place a new task while at its maximum."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._ecs import capacity_provider_group, service_providers
from tooling.cfn_rules._template import integer, mentions, props, resource, target


def _one_task_per_instance(cfn: Template, service: dict[str, Any]) -> bool:
    """Whether the service's tasks cannot share an instance: they reserve GPUs (which ECS hands out whole,
    and our hosts size to one task) or the service asks for distinct instances."""
    placement = props(service).get("PlacementConstraints", []) or []
    if any(isinstance(c, dict) and c.get("Type") == "distinctInstance" for c in placement):
        return True
    task = props(resource(cfn, target(props(service).get("TaskDefinition")), "AWS::ECS::TaskDefinition"))
    return any(
        isinstance(r, dict) and r.get("Type") == "GPU"
        for c in task.get("ContainerDefinitions", []) or []
        if isinstance(c, dict)
        for r in c.get("ResourceRequirements", []) or []
    )


def _max_tasks(cfn: Template, service_id: str, service: dict[str, Any]) -> int | None:
    """The most tasks the service runs: its scaling ceiling (schedules included), else DesiredCount."""
    ceilings = []
    for res in cfn.get_resources(["AWS::ApplicationAutoScaling::ScalableTarget"]).values():
        p = props(res)
        if p.get("ScalableDimension") != "ecs:service:DesiredCount" or not mentions(
            p.get("ResourceId"), service_id
        ):
            continue
        ceilings.append(integer(p.get("MaxCapacity")))
        for action in p.get("ScheduledActions", []) or []:
            ceilings.append(integer((action.get("ScalableTargetAction") or {}).get("MaxCapacity")))
    known = [c for c in ceilings if c is not None]
    if known:
        return max(known)
    return integer(props(service).get("DesiredCount", 1))


class EcsDeployHeadroom(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "ECS deployments at full scale have an instance to start on"
    description = (
        "During a rolling deployment ECS keeps MinimumHealthyPercent of the desired tasks running before it "
        "starts new ones. When each task needs a whole instance and the Auto Scaling group's MaxSize is no "
        "larger than the tasks that must keep running at the scaling ceiling, the new task can never be "
        "placed and the deployment stalls. Give the group room for one more instance than the service's "
        "maximum, or lower MinimumHealthyPercent so a task may stop first."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "autoscaling", "deployment"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, service in cfn.get_resources(["AWS::ECS::Service"]).items():
            groups = {capacity_provider_group(cfn, p) for p in service_providers(cfn, service)} - {None}
            if not groups or not _one_task_per_instance(cfn, service):
                continue
            deployment = props(service).get("DeploymentConfiguration") or {}
            min_healthy = integer(deployment.get("MinimumHealthyPercent", 100))
            tasks = _max_tasks(cfn, name, service)
            if min_healthy is None or tasks is None:
                continue
            kept = math.ceil(tasks * min_healthy / 100)
            for asg in sorted(groups):
                max_size = integer(props(cfn.template["Resources"][asg]).get("MaxSize"))
                if max_size is not None and max_size <= kept:
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "DeploymentConfiguration"],
                            f"{name}: at its maximum of {tasks} task(s) a deployment keeps {kept} running "
                            f"(MinimumHealthyPercent {min_healthy}) but {asg} MaxSize is {max_size}, "
                            f"one task an instance: the new task cannot be placed; set MaxSize to at least "
                            f"{kept + 1} or lower MinimumHealthyPercent",
                        )
                    )
        return matches
