"""The dashboard rules' cases (E9040-E9044): a small stack with a gateway, a load balancer, an ECS
service, an instance group and a SageMaker endpoint, and a dashboard over them that breaks one thing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.cfn_rules import templates as t

BODY = "Resources/Dashboard/Properties/DashboardBody"
NAME = "Resources/Dashboard/Properties/DashboardName"
STACK = ["deployctl/Gateway", "Requests", "Stack", "${AWS::StackName}", {"stat": "Sum"}]
ALB = [
    "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count",
    "TargetGroup", "${TargetGroup}", "LoadBalancer", "${LoadBalancer}", {"stat": "Sum"},
]  # fmt: skip
VARIABLES = {
    "LoadBalancer": {"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]},
    "TargetGroup": {"Fn::GetAtt": ["TargetGroup", "TargetGroupFullName"]},
    "Cluster": t.ref("Cluster"),
    "Service": {"Fn::GetAtt": ["Service", "Name"]},
    "Group": t.ref("InstanceGroup"),
    "Endpoint": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
    "AlarmArn": {"Fn::GetAtt": ["ErrorAlarm", "Arn"]},
}


def graph(*metrics: list[Any], region: str = "${AWS::Region}", **position: int) -> dict[str, Any]:
    return {
        "type": "metric", "x": 0, "y": 0, "width": 12, "height": 6, **position,
        "properties": {"region": region, "period": 60, "metrics": list(metrics)},
    }  # fmt: skip


def stack(
    *widgets: dict[str, Any], body: Any = None, insights: str = "enabled", **dashboard: Any
) -> dict[str, Any]:
    """A stack whose dashboard has `widgets` (or the raw `body`)."""
    text = json.dumps({"widgets": list(widgets)})
    used = {k: v for k, v in VARIABLES.items() if "${" + k + "}" in text}
    gateway = t.container(
        Environment=t.env(GATEWAY_PORT="8080", GATEWAY_METRICS_STACK=t.ref("AWS::StackName"))
    )
    return {
        "Resources": {
            "TaskDefinition": t.task_definition(gateway, role=None),
            "LoadBalancer": t.alb(),
            "TargetGroup": {
                "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                "Properties": {"Port": 8080, "Protocol": "HTTP", "VpcId": "vpc-0123456789abcdef0"},
            },
            "Cluster": {
                "Type": "AWS::ECS::Cluster",
                "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": insights}]},
            },
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {"Cluster": t.ref("Cluster"), "TaskDefinition": t.ref("TaskDefinition")},
            },
            "InstanceGroup": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "MinSize": "0",
                    "MaxSize": "2",
                    "AvailabilityZones": ["us-east-1a"],
                    "LaunchConfigurationName": "lc",
                    "MetricsCollection": [{"Granularity": "1Minute"}],
                },
            },
            "EndpointConfig": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "ModelName": "m",
                            "InitialInstanceCount": 1,
                            "InstanceType": "ml.g5.2xlarge",
                        }
                    ]
                },
            },
            "Endpoint": {
                "Type": "AWS::SageMaker::Endpoint",
                "Properties": {
                    "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}
                },
            },
            "ErrorAlarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "Namespace": "deployctl/Gateway",
                    "MetricName": "Errors",
                    "Statistic": "Sum",
                    "Period": 60,
                    "EvaluationPeriods": 1,
                    "Threshold": 1,
                    "ComparisonOperator": "GreaterThanThreshold",
                },
            },
            "Dashboard": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {
                    "DashboardName": {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"},
                    "DashboardBody": body if body is not None else {"Fn::Sub": [text, used]},
                    **dashboard,
                },
            },
        }
    }


def alarms(*arns: str) -> dict[str, Any]:
    return {"type": "alarm", "x": 0, "y": 0, "width": 8, "height": 5, "properties": {"alarms": list(arns)}}


def _without_gateway_stack() -> dict[str, Any]:
    out = stack(graph(STACK))
    out["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"] = t.env(
        GATEWAY_PORT="8080"
    )
    return out


def _gateway_env(**values: Any) -> dict[str, Any]:
    out = stack(graph(["deployctl/Gateway", "EngineRequestsWaiting", "Stack", "${AWS::StackName}"]))
    env = t.env(GATEWAY_PORT="8080", GATEWAY_METRICS_STACK=t.ref("AWS::StackName"), **values)
    out["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"] = env
    return out


def _group_without_collection() -> dict[str, Any]:
    out = stack(graph(["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", "${Group}"]))
    del out["Resources"]["InstanceGroup"]["Properties"]["MetricsCollection"]
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    sagemaker = ["AWS/SageMaker", "Invocations", "EndpointName", "${Endpoint}", "VariantName"]
    return [
        case(
            "E9040",
            "not JSON",
            stack(body={"Fn::Sub": '{"widgets": [}'}),
            BODY,
            "is not valid JSON",
            stack(graph(STACK)),
        ),
        case(
            "E9040",
            "a widget off the grid",
            stack(graph(STACK, x=18)),
            BODY,
            "widget 0: x 18 and width 12 do not fit the 24-column grid",
            stack(graph(STACK, x=12)),
        ),
        case(
            "E9040",
            "a metric widget without its region",
            stack(graph(STACK, region="")),
            BODY,
            "widget 0: a metric widget needs its region",
            stack(graph(STACK)),
        ),
        case(
            "E9041",
            "too many metrics in a widget",
            stack(graph(*[STACK] * 101)),
            BODY,
            "widget 0 has 101 metrics; at most 100 a widget",
            stack(graph(*[STACK] * 100)),
        ),
        case(
            "E9041",
            "too many metrics in the dashboard",
            stack(*[graph(*[STACK] * 100)] * 6),
            BODY,
            "has 600 metrics; at most 500 a dashboard",
            stack(*[graph(*[STACK] * 100)] * 5),
        ),
        case(
            "E9042",
            "a metric the gateway does not publish",
            stack(graph(["deployctl/Gateway", "QueueDepth", "Stack", "${AWS::StackName}"])),
            BODY,
            "widget 0 QueueDepth: the gateway publishes no such metric",
            stack(graph(["deployctl/Gateway", "EngineRequestsWaiting", "Stack", "${AWS::StackName}"])),
        ),
        case(
            "E9042",
            "a gauge by client, a dimension set it is not published with",
            stack(
                graph(["deployctl/Gateway", "RequestsInFlight", "Stack", "${AWS::StackName}", "Client", "a"])
            ),
            BODY,
            "dimensions [Client, Stack] are not the ones it is published with ([Stack])",
            stack(graph(["deployctl/Gateway", "Requests", "Stack", "${AWS::StackName}", "Client", "a"])),
        ),
        case(
            "E9042",
            "another stack's name typed in",
            stack(graph(["deployctl/Gateway", "Requests", "Stack", "prod-other"])),
            BODY,
            "Stack must be ${AWS::StackName}",
            stack(graph(STACK)),
        ),
        case(
            "E9042",
            "no gateway publishes with this stack's name",
            _without_gateway_stack(),
            BODY,
            "no gateway in this stack publishes deployctl/Gateway",
            stack(graph(STACK)),
        ),
        case(
            "E9043",
            "another load balancer typed in",
            stack(graph([*ALB[:3], "targetgroup/other/0123456789abcdef", *ALB[4:]])),
            BODY,
            "TargetGroup must be GetAtt AWS::ElasticLoadBalancingV2::TargetGroup.TargetGroupFullName",
            stack(graph(ALB)),
        ),
        case(
            "E9043",
            "another region",
            stack(graph(ALB, region="eu-west-1")),
            BODY,
            "widget 0: region must be ${AWS::Region}",
            stack(graph(ALB)),
        ),
        case(
            "E9043",
            "Container Insights metrics of a cluster without it",
            stack(
                graph(
                    [
                        "ECS/ContainerInsights",
                        "RunningTaskCount",
                        "ClusterName",
                        "${Cluster}",
                        "ServiceName",
                        "${Service}",
                    ]
                ),
                insights="disabled",
            ),
            BODY,
            "the cluster does not have Container Insights on",
            stack(
                graph(["AWS/ECS", "CPUUtilization", "ClusterName", "${Cluster}", "ServiceName", "${Service}"])
            ),
        ),
        case(
            "E9043",
            "group metrics of a group that does not collect them",
            _group_without_collection(),
            BODY,
            "the group has no MetricsCollection",
            stack(graph(["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", "${Group}"])),
        ),
        case(
            "E9043",
            "a variant the endpoint does not have",
            stack(graph([*sagemaker, "Canary"])),
            BODY,
            "VariantName 'Canary' is no variant of this stack's endpoint",
            stack(graph([*sagemaker, "AllTraffic"])),
        ),
        case(
            "E9043",
            "a namespace this stack has nothing in",
            stack(graph(["AWS/Lambda", "Errors", "FunctionName", "other"])),
            BODY,
            "this stack has no metrics in AWS/Lambda",
            stack(graph(ALB)),
        ),
        case(
            "E9043",
            "a search expression",
            stack(graph([{"expression": "SEARCH('{AWS/ApplicationELB} HTTPCode_Target_5XX_Count', 'Sum')"}])),
            BODY,
            "a search expression matches metrics beyond this stack's",
            stack(graph(ALB, [{"expression": "m1 * 2", "id": "e1"}])),
        ),
        case(
            "E9044",
            "a fixed name",
            stack(graph(STACK), DashboardName="llm-dashboard"),
            NAME,
            "lacks ${AWS::StackName} and ${AWS::Region}",
            stack(graph(STACK)),
        ),
        case(
            "E9044",
            "the stack's name without its region",
            stack(graph(STACK), DashboardName={"Fn::Sub": "${AWS::StackName}"}),
            NAME,
            "lacks ${AWS::Region}",
            stack(graph(STACK), DashboardName={"Fn::Sub": "${AWS::StackName}-${AWS::Region}-llm"}),
        ),
        case(
            "E9044",
            "a character PutDashboard refuses",
            stack(graph(STACK), DashboardName={"Fn::Sub": "${AWS::StackName}.${AWS::Region}"}),
            NAME,
            "has characters other than A-Za-z0-9-_",
            stack(graph(STACK)),
        ),
    ]
