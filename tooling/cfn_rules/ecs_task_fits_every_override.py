"""E9038: an ECS task on a mixed instances group fits the smallest of its instance types."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling import catalog
from tooling.cfn_rules._ecs import capacity_provider_group, service_providers
from tooling.cfn_rules._mixed import mixed_groups
from tooling.cfn_rules._template import integer, props, resource, target


def _reserved(task: dict[str, Any]) -> tuple[int | None, int]:
    """(MiB of memory, GPUs) the task reserves: the task-level Memory, else its containers' sum."""
    containers = [c for c in task.get("ContainerDefinitions", []) or [] if isinstance(c, dict)]
    memory = integer(task.get("Memory"))
    if memory is None:
        each = [integer(c.get("Memory", c.get("MemoryReservation"))) for c in containers]
        memory = sum(m for m in each if m) or None
    gpus = sum(
        integer(r.get("Value")) or 0
        for c in containers
        for r in c.get("ResourceRequirements", []) or []
        if isinstance(r, dict) and r.get("Type") == "GPU"
    )
    return memory, gpus


class EcsTaskFitsEveryOverride(CloudFormationLintRule):
    id = "E9038"
    shortdesc = "ECS tasks fit every instance type of their capacity provider's group"
    description = (
        "ECS places a task only on a container instance with the memory and GPUs the task reserves. In a "
        "mixed instances group Auto Scaling may launch any of the overrides, and ECS managed scaling "
        "sizes its scale-out from the group's smallest and largest types: a task that needs more than "
        "the smallest type has stays PROVISIONING on such an instance while the group keeps paying for "
        "it. Size the task's memory and GPUs to the smallest override."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-scaling-behavior.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "autoscaling", "gpu"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        groups = {g.name: g for g in mixed_groups(cfn)}
        matches = []
        for name, service in cfn.get_resources(["AWS::ECS::Service"]).items():
            task_id = target(props(service).get("TaskDefinition"))
            task = props(resource(cfn, task_id, "AWS::ECS::TaskDefinition"))
            memory, gpus = _reserved(task)
            for provider in service_providers(cfn, service):
                group = groups.get(capacity_provider_group(cfn, provider) or "")
                if group is None:
                    continue
                for t in group.overrides:
                    instance = catalog.EC2_GPU_INSTANCES.get(t or "")
                    if instance is None:
                        continue
                    short = []
                    if memory and memory > instance.memory_gib * 1024:
                        short.append(f"{memory} MiB of memory ({instance.memory_gib} GiB there)")
                    if gpus > instance.gpus:
                        short.append(f"{gpus} GPU(s) ({instance.gpus} there)")
                    if short:
                        matches.append(
                            RuleMatch(
                                ["Resources", task_id, "Properties"],
                                f"{task_id} (service {name}) reserves {' and '.join(short)}: it cannot "
                                f"be placed on {instance.name}, an override of {group.name}; size it to "
                                "the smallest override",
                            )
                        )
        return matches
