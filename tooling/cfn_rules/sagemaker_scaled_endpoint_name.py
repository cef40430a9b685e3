"""E9022: an autoscaled SageMaker endpoint's name carries its variants' instance types."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import props, resource, target


def instance_type_label(instance_type: str) -> str:
    """How an instance type appears in an endpoint name, which allows no dots: ml.g5.2xlarge -> g5-2xlarge."""
    return instance_type.removeprefix("ml.").replace(".", "-")


def _scaled_endpoints(cfn: Template) -> set[str]:
    """Endpoint names that a scalable target in this template scales (ResourceId endpoint/<name>/...)."""
    names = set()
    for res in cfn.get_resources("AWS::ApplicationAutoScaling::ScalableTarget").values():
        given = props(res)
        resource_id = given.get("ResourceId")
        if given.get("ServiceNamespace") == "sagemaker" and isinstance(resource_id, str):
            parts = resource_id.split("/")
            if len(parts) >= 2 and parts[0] == "endpoint":
                names.add(parts[1])
    return names


class SageMakerScaledEndpointName(CloudFormationLintRule):
    id = "E9022"
    shortdesc = "An autoscaled SageMaker endpoint's name holds its instance type"
    description = (
        "Application Auto Scaling fails an UpdateEndpoint that changes the instance type of a variant it "
        "scales, so a stack update that changes the type of an autoscaled endpoint fails and rolls back. "
        "With the instance type in EndpointName (create-only), the change replaces the endpoint instead: "
        "a new endpoint and a new scalable target are created and the old ones deleted. The name of an "
        "endpoint a scalable target scales must contain each variant's instance type (dots as hyphens, "
        "without the ml. prefix)."
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html"
    tags: ClassVar[list[str]] = ["resources", "sagemaker", "autoscaling", "replacement"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        scaled = _scaled_endpoints(cfn)
        matches = []
        for logical_id, res in cfn.get_resources("AWS::SageMaker::Endpoint").items():
            given = props(res)
            name = given.get("EndpointName")
            if not isinstance(name, str) or name not in scaled:
                continue
            config = resource(cfn, target(given.get("EndpointConfigName")), "AWS::SageMaker::EndpointConfig")
            variants: Any = props(config).get("ProductionVariants")
            for variant in variants if isinstance(variants, list) else []:
                kind = variant.get("InstanceType") if isinstance(variant, dict) else None
                if isinstance(kind, str) and instance_type_label(kind) not in name:
                    matches.append(
                        RuleMatch(
                            ["Resources", logical_id, "Properties", "EndpointName"],
                            f"{logical_id} is scaled by Application Auto Scaling but its name {name} does "
                            f"not contain its instance type ({instance_type_label(kind)}): changing the "
                            "type would fail the update; put the type in the name so it replaces the "
                            "endpoint",
                        )
                    )
        return matches
