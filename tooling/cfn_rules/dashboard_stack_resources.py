"""E9043: a dashboard's AWS metrics are those of this stack's resources, in this stack's region."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates import gateway_metrics as gw
from tooling.cfn_rules._dashboard import Body, MetricRow, Source, bodies
from tooling.cfn_rules._template import as_list, props, resource


@dataclass(frozen=True)
class Dimension:
    """A dimension's value is this attribute (Ref when "") of a resource of this type in the stack."""

    resource_type: str
    attribute: str = ""


ELB = "AWS::ElasticLoadBalancingV2::"
ECS = {"ClusterName": Dimension("AWS::ECS::Cluster"), "ServiceName": Dimension("AWS::ECS::Service", "Name")}
GROUP = {"AutoScalingGroupName": Dimension("AWS::AutoScaling::AutoScalingGroup")}
ENDPOINT = {
    "EndpointName": Dimension("AWS::SageMaker::Endpoint", "EndpointName"),
    "VariantName": Dimension("AWS::SageMaker::Endpoint", "variant"),
}
# The AWS namespaces a deployment stack has metrics in, and what each dimension names. Metrics list:
# ELB https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
# ECS https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html
# Container Insights https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html
# Auto Scaling https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html
# SageMaker https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
NAMESPACES: dict[str, dict[str, Dimension]] = {
    "AWS/ApplicationELB": {
        "LoadBalancer": Dimension(ELB + "LoadBalancer", "LoadBalancerFullName"),
        "TargetGroup": Dimension(ELB + "TargetGroup", "TargetGroupFullName"),
    },
    "AWS/ECS": ECS,
    "ECS/ContainerInsights": ECS,
    "AWS/AutoScaling": GROUP,
    "AWS/EC2": GROUP,
    "AWS/SageMaker": ENDPOINT,
    "/aws/sagemaker/Endpoints": ENDPOINT,
}
REGION = Source("pseudo", "AWS::Region")
ALARM = Dimension("AWS::CloudWatch::Alarm", "Arn")


def _insights(cluster: dict[str, Any] | None) -> bool:
    settings = as_list(props(cluster).get("ClusterSettings"))
    return any(
        isinstance(s, dict)
        and s.get("Name") == "containerInsights"
        and s.get("Value") in ("enabled", "enhanced")
        for s in settings
    )


def _variants(cfn: Template, endpoint: dict[str, Any] | None) -> set[str]:
    config_ref = props(endpoint).get("EndpointConfigName")
    logical = None
    if isinstance(config_ref, dict):
        arg = config_ref.get("Fn::GetAtt") or config_ref.get("Ref")
        logical = arg[0] if isinstance(arg, list) else str(arg).split(".")[0] if arg else None
    config = resource(cfn, logical, "AWS::SageMaker::EndpointConfig")
    return {
        v["VariantName"]
        for v in as_list(props(config).get("ProductionVariants"))
        if isinstance(v, dict) and isinstance(v.get("VariantName"), str)
    }


class DashboardStackResources(CloudFormationLintRule):
    id = "E9043"
    shortdesc = "Dashboards read AWS metrics of this stack's own resources"
    description = (
        "Each metric of a dashboard is a namespace, a name and dimension values "
        "([Namespace, MetricName, Dim, Value, ...]); a value typed in names some other resource, and a "
        "region typed in shows another region. Every metric of an AWS namespace must have dimensions "
        "that are Refs or GetAtts of this stack's resources of the right type (the load balancer's and "
        "target group's full names, the ECS cluster and service, the instance group, the SageMaker "
        "endpoint and one of its variants), Container Insights metrics only of a cluster that has it "
        "enabled, instance group metrics only of a group that collects them, and every metric widget "
        "the region ${AWS::Region}, and alarm widgets this stack's alarms. Search expressions, which "
        "match metrics of other stacks, are refused."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html"
    tags: ClassVar[list[str]] = ["resources", "cloudwatch", "dashboard", "metrics"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for body in bodies(cfn):
            for index, properties in body.metric_widgets():
                if body.source(properties.get("region")) != REGION:
                    matches.append(
                        RuleMatch(
                            body.path, f"{body.logical_id}: widget {index}: region must be ${{AWS::Region}}"
                        )
                    )
                for raw in properties.get("metrics") or []:
                    expression = next(
                        (p.get("expression") for p in as_list(raw) if isinstance(p, dict)), None
                    )
                    if isinstance(expression, str) and (
                        "SEARCH(" in expression.upper() or "SELECT " in expression.upper()
                    ):
                        matches.append(
                            RuleMatch(
                                body.path,
                                f"{body.logical_id}: widget {index}: a search expression matches metrics "
                                "beyond this stack's; name each metric",
                            )
                        )
            for metric in body.metrics():
                matches += [RuleMatch(body.path, m) for m in self._metric(cfn, body, metric)]
            for index, widget in enumerate(body.widgets()):
                properties = widget.get("properties") if isinstance(widget.get("properties"), dict) else {}
                for arn in as_list(properties.get("alarms")) if widget.get("type") == "alarm" else []:
                    if self._resource(cfn, body.source(arn), ALARM) is None:
                        matches.append(
                            RuleMatch(
                                body.path,
                                f"{body.logical_id}: widget {index}: alarm {_shown(body.source(arn))} is not "
                                "GetAtt Arn of an AWS::CloudWatch::Alarm of this stack",
                            )
                        )
        return matches

    def _metric(self, cfn: Template, body: Body, metric: MetricRow) -> list[str]:
        where = f"{body.logical_id}: widget {metric.widget} {metric.namespace} {metric.name}"
        if metric.namespace == gw.NAMESPACE:
            return []  # E9042
        expected = NAMESPACES.get(metric.namespace)
        if expected is None:
            return [
                f"{where}: this stack has no metrics in {metric.namespace} (it has {', '.join(NAMESPACES)})"
            ]
        problems = []
        endpoint = None
        for name, value in metric.dimensions.items():
            wanted = expected.get(name)
            if wanted is None:
                problems.append(f"{where}: {metric.namespace} has no dimension {name} for this stack")
                continue
            if wanted.attribute == "variant":
                continue  # checked against the endpoint below
            found = self._resource(cfn, value, wanted)
            if found is None:
                problems.append(
                    f"{where}: {name} must be {_wanted(wanted)} of this stack, not {_shown(value)}"
                )
                continue
            if metric.namespace == "ECS/ContainerInsights" and name == "ClusterName" and not _insights(found):
                problems.append(
                    f"{where}: the cluster does not have Container Insights on, so publishes no such metric"
                )
            if metric.namespace == "AWS/AutoScaling" and not props(found).get("MetricsCollection"):
                problems.append(f"{where}: the group has no MetricsCollection, so publishes no group metrics")
            if wanted.resource_type == "AWS::SageMaker::Endpoint":
                endpoint = found
        if "VariantName" in metric.dimensions:
            variant = metric.dimensions["VariantName"]
            if endpoint is None or variant not in _variants(cfn, endpoint):
                problems.append(
                    f"{where}: VariantName {_shown(variant)} is no variant of this stack's endpoint"
                )
        return problems

    @staticmethod
    def _resource(cfn: Template, value: Any, wanted: Dimension) -> dict[str, Any] | None:
        if not isinstance(value, Source) or value.kind not in ("ref", "getatt"):
            return None
        if (value.kind == "getatt") != bool(wanted.attribute) or value.attribute != wanted.attribute:
            return None
        return resource(cfn, value.name, wanted.resource_type)


def _wanted(wanted: Dimension) -> str:
    if wanted.attribute:
        return f"GetAtt {wanted.resource_type}.{wanted.attribute}"
    return f"Ref of an {wanted.resource_type}"


def _shown(value: Any) -> str:
    if isinstance(value, Source):
        return f"{value.kind} {value.name}{'.' + value.attribute if value.attribute else ''}"
    return repr(value)
