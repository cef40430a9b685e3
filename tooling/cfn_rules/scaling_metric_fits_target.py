"""E9033: a predefined scaling metric belongs to the kind of resource its scalable target scales."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._scaling import AAS_POLICY
from tooling.cfn_rules._template import props, resource, target

# Predefined metric type prefix -> the scalable dimension its metric describes.
DIMENSION_OF = {
    "SageMakerVariant": "sagemaker:variant:DesiredInstanceCount",
    "SageMakerInferenceComponent": "sagemaker:inference-component:DesiredCopyCount",
    "ECSService": "ecs:service:DesiredCount",
}


class ScalingMetricFitsTarget(CloudFormationLintRule):
    id = "E9033"
    shortdesc = "Predefined scaling metrics match their scalable target's dimension"
    description = (
        "Application Auto Scaling's predefined metrics each measure one kind of resource: "
        "SageMakerVariant* metrics (SageMakerVariantConcurrentRequestsPerModelHighResolution among them) a "
        "variant's instances, SageMakerInferenceComponent* an inference component's copies, ECSService* an "
        "ECS service's tasks. A policy whose predefined metric describes another kind than its scalable "
        "target's ScalableDimension is refused by PutScalingPolicy, or tracks nothing."
    )
    source_url = "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PredefinedMetricSpecification.html"
    tags: ClassVar[list[str]] = ["resources", "applicationautoscaling"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, policy in cfn.get_resources([AAS_POLICY]).items():
            config = props(policy).get("TargetTrackingScalingPolicyConfiguration") or {}
            spec = config.get("PredefinedMetricSpecification") if isinstance(config, dict) else None
            kind = spec.get("PredefinedMetricType") if isinstance(spec, dict) else None
            if not isinstance(kind, str):
                continue
            wanted = next((d for prefix, d in DIMENSION_OF.items() if kind.startswith(prefix)), None)
            scalable = props(
                resource(
                    cfn,
                    target(props(policy).get("ScalingTargetId")),
                    "AWS::ApplicationAutoScaling::ScalableTarget",
                )
            )
            dimension = scalable.get("ScalableDimension") or props(policy).get("ScalableDimension")
            if wanted is None or not isinstance(dimension, str) or dimension == wanted:
                continue
            matches.append(
                RuleMatch(
                    ["Resources", name, "Properties", "TargetTrackingScalingPolicyConfiguration",
                     "PredefinedMetricSpecification", "PredefinedMetricType"],
                    f"{name} tracks {kind}, a metric of {wanted}, on a target that scales {dimension}",
                )
            )  # fmt: skip
        return matches
