"""E9037: the instance types of one group have the same GPUs to give its one workload."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling import catalog
from tooling.cfn_rules._mixed import mixed_groups


class MixedInstancesSameGpus(CloudFormationLintRule):
    id = "E9037"
    shortdesc = "A mixed instances group's GPU types share GPU count and architecture"
    description = (
        "Every instance of a GPU group runs the same ECS task or container, which reserves all of the "
        "instance's GPUs (a GPU resource requirement, or docker --gpus all) and shards the model over "
        "exactly that many: an override with fewer GPUs cannot place the task, one with more leaves GPUs "
        "paid for and idle. One AMI and one image serve the group, so the CPU architecture must agree too. "
        "List only instance types with the first override's GPU count and architecture."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-gpu.html"
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "gpu"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for group in mixed_groups(cfn):
            known = [
                (i, catalog.EC2_GPU_INSTANCES[t])
                for i, t in enumerate(group.overrides)
                if t in catalog.EC2_GPU_INSTANCES
            ]
            if not known:
                continue
            _, first = known[0]
            for index, other in known[1:]:
                if other.gpus != first.gpus or other.architecture != first.architecture:
                    matches.append(
                        RuleMatch(
                            group.path("LaunchTemplate", "Overrides", index, "InstanceType"),
                            f"{group.name}: override {other.name} has {other.gpus} GPU(s) on "
                            f"{other.architecture}, the first override {first.name} {first.gpus} on "
                            f"{first.architecture}; every override needs the first one's GPU count and "
                            "architecture",
                        )
                    )
        return matches
