"""E9019: ECS CPU target tracking only on services whose tasks reserve CPU."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import integer, mentions, props, resource, target


class EcsCpuTrackingNeedsTaskCpu(CloudFormationLintRule):
    id = "E9019"
    shortdesc = "ECSServiceAverageCPUUtilization tracks services whose tasks reserve CPU"
    description = (
        "ECS computes a service's CPU utilisation as the CPU units its tasks use over the CPU units the "
        "task definition specifies. A task definition without a task-level Cpu (a GPU task on EC2, say) "
        "gives that metric no denominator, so a target-tracking policy on it never tracks the service's "
        "load. Set Cpu on the task definition, or track ALBRequestCountPerTarget."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "applicationautoscaling"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        services = cfn.get_resources(["AWS::ECS::Service"])
        matches = []
        for name, policy in cfn.get_resources(["AWS::ApplicationAutoScaling::ScalingPolicy"]).items():
            config = props(policy).get("TargetTrackingScalingPolicyConfiguration") or {}
            metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
            if metric != "ECSServiceAverageCPUUtilization":
                continue
            scalable = props(
                resource(
                    cfn,
                    target(props(policy).get("ScalingTargetId")),
                    "AWS::ApplicationAutoScaling::ScalableTarget",
                )
            )
            for service_id, service in services.items():
                if not mentions(scalable.get("ResourceId"), service_id):
                    continue
                task = props(
                    resource(cfn, target(props(service).get("TaskDefinition")), "AWS::ECS::TaskDefinition")
                )
                cpu = task.get("Cpu")
                if cpu is None or (integer(cpu) is not None and integer(cpu) <= 0):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "TargetTrackingScalingPolicyConfiguration"],
                            f"{name} tracks ECSServiceAverageCPUUtilization of {service_id}, whose task "
                            "definition sets no Cpu: the metric has no reserved CPU to measure against; set "
                            "the task's Cpu or track ALBRequestCountPerTarget",
                        )
                    )
        return matches
