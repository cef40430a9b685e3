"""Every project rule on a small template that breaks its contract, and on one that keeps it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cfn_rules import dashboard_cases
from tests.cfn_rules import templates as t
from tests.cfn_rules.conftest import findings


@dataclass(frozen=True)
class Case:
    rule: str
    name: str
    failing: dict[str, Any]
    path: str
    message: str  # a part of the one-line message
    passing: dict[str, Any]


def _task(**container: Any) -> dict[str, Any]:
    return {"Resources": {"TaskDefinition": t.task_definition(t.container(**container), role=None)}}


def _retained(policy: str, **properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": policy,
                "UpdateReplacePolicy": "Retain",
                "Properties": {"RetentionInDays": 30, **properties},
            }
        }
    }


def _lambda(**properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "RotationFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "index.handler",
                    "Role": "arn:aws:iam::123456789012:role/rotation",
                    "Code": {"ZipFile": "def handler(event, context):\n    pass\n"},
                    **properties,
                },
            }
        }
    }


def _gateway_task(keep_alive: str | None, *, idle: str | None = "600") -> dict[str, Any]:
    values = {"GATEWAY_PORT": "8080"}
    if keep_alive is not None:
        values["GATEWAY_KEEP_ALIVE_TIMEOUT"] = keep_alive
    resources = {"TaskDefinition": t.task_definition(t.container(Environment=t.env(**values)), role=None)}
    resources["LoadBalancer"] = t.alb(idle)
    return {"Resources": resources}


def _ec2_keep_alive(value: str) -> dict[str, Any]:
    data = (
        "#!/bin/bash\ndocker run --detach --publish 8080:8080 --env GATEWAY_PORT='8080' "
        "--env GATEWAY_KEEP_ALIVE_TIMEOUT='${Env1}' ${Image}\n"
    )
    out = t.ec2_group(user_data=data)
    out["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"][
        "Fn::Sub"
    ][1]["Env1"] = value
    out["Resources"]["LoadBalancer"] = t.alb("600")
    return out


def _sagemaker(*actions: str, timeout: str | None = "900") -> dict[str, Any]:
    values = {"GATEWAY_PORT": "8080", "GATEWAY_UPSTREAM": "sagemaker", "GATEWAY_SAGEMAKER_ENDPOINT": "llm"}
    if timeout is not None:
        values["GATEWAY_UPSTREAM_TIMEOUT"] = timeout
    return {
        "Resources": {
            "TaskDefinition": t.task_definition(t.container(Environment=t.env(**values))),
            "TaskRole": t.role(*actions),
        }
    }


def _service_depends_on(*names: str) -> dict[str, Any]:
    out = t.gpu_ecs()
    out["Resources"]["Service"]["DependsOn"] = list(names)
    return out


def _no_metadata_options() -> dict[str, Any]:
    out = t.ec2_group()
    del out["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    return out


def _scheduled(update_policy: dict[str, Any]) -> dict[str, Any]:
    out = t.ec2_group()
    out["Resources"]["InstanceGroup"]["UpdatePolicy"] = update_policy
    out["Resources"]["ScheduleNights"] = {
        "Type": "AWS::AutoScaling::ScheduledAction",
        "Properties": {"AutoScalingGroupName": t.ref("InstanceGroup"), "MinSize": 0, "MaxSize": 0,
                       "Recurrence": "0 20 * * 1-5"},
    }  # fmt: skip
    return out


def _egress(*depends: str, user_data: str = t.USER_DATA_BRIDGE) -> dict[str, Any]:
    out = t.merged(t.vpc(), t.ec2_group(user_data=user_data))
    r = out["Resources"]
    r["PrivateSubnet1"] = {
        "Type": "AWS::EC2::Subnet",
        "Properties": {"VpcId": t.ref("Vpc"), "CidrBlock": "10.0.1.0/24"},
    }
    r["PrivateSubnet1Routes"] = {
        "Type": "AWS::EC2::SubnetRouteTableAssociation",
        "Properties": {"SubnetId": t.ref("PrivateSubnet1"), "RouteTableId": t.ref("PrivateRouteTable1")},
    }
    r["NatGateway1"] = {"Type": "AWS::EC2::NatGateway", "Properties": {"SubnetId": "subnet-0a0a0a0a"}}
    r["PrivateDefaultRoute1"] = {
        "Type": "AWS::EC2::Route",
        "Properties": {
            "RouteTableId": t.ref("PrivateRouteTable1"),
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": t.ref("NatGateway1"),
        },
    }
    r["InstanceGroup"]["Properties"]["VPCZoneIdentifier"] = [t.ref("PrivateSubnet1")]
    if depends:
        r["InstanceGroup"]["DependsOn"] = list(depends)
    return out


def _imds(**options: Any) -> dict[str, Any]:
    out = t.ec2_group()
    out["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"].update(options)
    return out


def _signalled(*, nat: bool, endpoint: bool = False) -> dict[str, Any]:
    """An ec2-style group waiting for signals, in a private subnet with or without NAT or endpoint."""
    out = _egress("PrivateDefaultRoute1", "PrivateSubnet1Routes")
    r = out["Resources"]
    if not nat:
        del r["PrivateDefaultRoute1"], r["NatGateway1"]
        r["InstanceGroup"]["DependsOn"] = ["PrivateSubnet1Routes"]
    if endpoint:
        r["CloudformationEndpoint"] = t.interface_endpoint(t.ref("Vpc"))
        r["CloudformationEndpoint"]["Properties"]["ServiceName"] = {
            "Fn::Sub": "com.amazonaws.${AWS::Region}.cloudformation"
        }
    return out


def _gpu_task(gpus: int, engine_args: dict[str, Any] | None) -> dict[str, Any]:
    out = t.gpu_ecs()
    (container,) = out["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    container["ResourceRequirements"] = [{"Type": "GPU", "Value": str(gpus)}]
    if engine_args is not None:
        container["Environment"] = t.env(ENGINE_ARGS=json.dumps(engine_args))
    return out


def _cpu_tracking(*, task_cpu: bool, metric: str = "ECSServiceAverageCPUUtilization") -> dict[str, Any]:
    out = t.gpu_ecs()
    r = out["Resources"]
    if not task_cpu:
        del r["TaskDefinition"]["Properties"]["Cpu"]
    r["ServiceCpuPercentPolicy"] = {
        "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Properties": {
            "PolicyName": "cpu",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": t.ref("ServiceScalableTarget"),
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                "TargetValue": 70.0,
            },
        },
    }
    return out


_GATEWAY_ENV: dict[str, Any] = {
    "GATEWAY_PORT": "8080",
    "GATEWAY_METRICS_STACK": t.ref("AWS::StackName"),
    "ENGINE_MODEL": "org/model",
    "SUPERVISOR_GRACE": "55",
    "GATEWAY_SHUTDOWN_GRACE": "50",
}
_QUEUE_METRIC: dict[str, Any] = {
    "Namespace": "deployctl/Gateway",
    "MetricName": "EngineRequestsWaiting",
    "Dimensions": [{"Name": "Stack", "Value": t.ref("AWS::StackName")}],
    "Statistic": "Average",
}
_QUEUE_POLICY = "Resources/ServiceQueueDepthPerTaskPolicy/Properties/TargetTrackingScalingPolicyConfiguration"


def _gateway_scaled(
    metric: dict[str, Any] | None = None, *, stop: int | None = 120, **env: Any
) -> dict[str, Any]:
    """The ecs-gpu shape: vLLM and the gateway in one container, the service tracking a gateway gauge;
    a None in `metric` or `env` removes that key."""
    out = t.gpu_ecs()
    r = out["Resources"]
    values = {k: v for k, v in {**_GATEWAY_ENV, **env}.items() if v is not None}
    container = r["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    container["Environment"] = t.env(**values)
    if stop is not None:
        container["StopTimeout"] = stop
    spec = {k: v for k, v in {**_QUEUE_METRIC, **(metric or {})}.items() if v is not None}
    r["ServiceQueueDepthPerTaskPolicy"] = {
        "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Properties": {
            "PolicyName": "queue",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": t.ref("ServiceScalableTarget"),
            "TargetTrackingScalingPolicyConfiguration": {
                "CustomizedMetricSpecification": spec,
                "TargetValue": 4.0,
            },
        },
    }
    return out


def _ec2_gateway_scaled(stack_value: Any, published: Any = None) -> dict[str, Any]:
    """The ec2 shape: the gateway's variables in user data, an EC2 Auto Scaling target-tracking policy."""
    data = (
        "#!/bin/bash\ndocker run --detach --publish 8080:8080 --env GATEWAY_PORT='8080' "
        "--env GATEWAY_METRICS_STACK='${Env1}' ${Image}\n"
    )
    out = t.ec2_group(user_data=data)
    sub = out["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    sub["Fn::Sub"][1]["Env1"] = published if published is not None else t.ref("AWS::StackName")
    metric = {**_QUEUE_METRIC, "MetricName": "RequestsInFlight"}
    metric["Dimensions"] = [{"Name": "Stack", "Value": stack_value}]
    out["Resources"]["GroupRequestsInFlightPerTaskPolicy"] = {
        "Type": "AWS::AutoScaling::ScalingPolicy",
        "Properties": {
            "AutoScalingGroupName": t.ref("InstanceGroup"),
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingConfiguration": {"CustomizedMetricSpecification": metric, "TargetValue": 16.0},
        },
    }
    return out


def _predefined(out: dict[str, Any], target: str, metric: str) -> dict[str, Any]:
    out["Resources"]["TrackingPolicy"] = {
        "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Properties": {
            "PolicyName": "tracking",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": t.ref(target),
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                "TargetValue": 8.0,
            },
        },
    }
    return out


ALL_SAGEMAKER = (
    "sagemaker:InvokeEndpoint",
    "sagemaker:InvokeEndpointWithResponseStream",
    "sagemaker:DescribeEndpoint",
)
ROLLING = {"MaxBatchSize": 1, "MinInstancesInService": 1, "PauseTime": "PT15M", "WaitOnResourceSignals": True}


def _scaled_endpoint(
    name: str, instance_type: str = "ml.g5.2xlarge", *, scaled: bool = True
) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Model": {
            "Type": "AWS::SageMaker::Model",
            "Properties": {
                "ExecutionRoleArn": "arn:aws:iam::123456789012:role/model",
                "PrimaryContainer": {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm:1"},
            },
        },
        "EndpointConfig": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
                        "InstanceType": instance_type,
                        "InitialInstanceCount": 1,
                        "InitialVariantWeight": 1.0,
                    }
                ]
            },
        },
        "Endpoint": {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {
                "EndpointName": name,
                "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
            },
        },
    }
    if scaled:
        resources["EndpointScalableTarget"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "DependsOn": ["Endpoint"],
            "Properties": {
                "ServiceNamespace": "sagemaker",
                "ResourceId": f"endpoint/{name}/variant/AllTraffic",
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                "MinCapacity": 1,
                "MaxCapacity": 3,
            },
        }
    return {"Resources": resources}


def _budget(**data: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "MonthlyBudget": {
                "Type": "AWS::Budgets::Budget",
                "Properties": {
                    "Budget": {
                        "BudgetType": "COST",
                        "TimeUnit": "MONTHLY",
                        "BudgetLimit": {"Amount": 100, "Unit": "USD"},
                        **data,
                    },
                    "NotificationsWithSubscribers": [
                        {
                            "Notification": {
                                "NotificationType": "ACTUAL",
                                "ComparisonOperator": "GREATER_THAN",
                                "Threshold": 80,
                                "ThresholdType": "PERCENTAGE",
                            },
                            "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "oncall@example.com"}],
                        }
                    ],
                },
            }
        }
    }


def _mixed(
    *types: str,
    spot: bool = True,
    market: bool = False,
    template_type: str | None = None,
    memory: int = 512,
    gpus: int = 1,
    draining: bool = True,
) -> dict[str, Any]:
    """The ecs-gpu shape with its group on a mixed instances policy over `types`."""
    out = t.gpu_ecs()
    r = out["Resources"]
    data = r["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    data["InstanceType"] = template_type or types[0]
    config = "ECS_CLUSTER=${Cluster}\n" + ("ECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n" if draining else "")
    data["UserData"] = {"Fn::Base64": {"Fn::Sub": ["#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'C'\n" + config
                                                   + "C\n", {"Cluster": t.ref("Cluster")}]}}  # fmt: skip
    if market:
        data["InstanceMarketOptions"] = {"MarketType": "spot"}
    group = r["InstanceGroup"]["Properties"]
    group["MixedInstancesPolicy"] = {
        "InstancesDistribution": {
            "OnDemandBaseCapacity": 1,
            "OnDemandPercentageAboveBaseCapacity": 0 if spot else 100,
            "OnDemandAllocationStrategy": "prioritized",
            **({"SpotAllocationStrategy": "price-capacity-optimized"} if spot else {}),
        },
        "LaunchTemplate": {
            "LaunchTemplateSpecification": group.pop("LaunchTemplate"),
            "Overrides": [{"InstanceType": name} for name in types],
        },
    }
    task = r["TaskDefinition"]["Properties"]
    task["Memory"] = str(memory)
    (container,) = task["ContainerDefinitions"]
    container["ResourceRequirements"] = [{"Type": "GPU", "Value": str(gpus)}]
    return out


def _probe_stack(
    *,
    subnets: list[Any] | None = None,
    ingress: bool = True,
    egress_port: int = 80,
    timeout: int = 900,
    request: str | None = "120",
    output: bool = True,
    logs: bool = True,
    retention: bool = True,
    role_actions: tuple[str, ...] = (
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
    ),
    tags: dict[str, str] | None = None,
    function_name: str | None = None,
    subnet_environment: str = "prod",
) -> dict[str, Any]:
    """An internal load balancer on port 80 and its smoke probe, as templates/smoke_probe.py builds them."""
    private = [t.ref("PrivateSubnet1"), t.ref("PrivateSubnet2")]
    function: dict[str, Any] = {
        "Runtime": "python3.13",
        "Handler": "index.handler",
        "Role": t.arn("SmokeProbeRole"),
        "Code": {"ZipFile": "def handler(event, context):\n    return {}\n"},
        "Timeout": timeout,
        "VpcConfig": {"SubnetIds": private if subnets is None else subnets,
                      "SecurityGroupIds": [t.ref("SmokeProbeSecurityGroup")]},
    }  # fmt: skip
    if tags is None:
        tags = {"deployctl:role": "smoke-probe", "deployctl:environment": "prod"}
    function["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if function_name is not None:
        function["FunctionName"] = function_name
    if request is not None:
        function["Environment"] = {"Variables": {"SMOKE_REQUEST_TIMEOUT_SECONDS": request}}
    if logs:
        function["LoggingConfig"] = {"LogGroup": t.ref("SmokeProbeLogGroup")}
    resources: dict[str, Any] = {
        "LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {
                "Scheme": "internal",
                "Subnets": private,
                "SecurityGroups": [t.ref("LoadBalancerSecurityGroup")],
            },
        },
        "HttpListener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": t.ref("LoadBalancer"),
                "Port": 80,
                "Protocol": "HTTP",
                "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
            },
        },
        "LoadBalancerSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {"GroupDescription": "lb", "VpcId": "vpc-0123456789abcdef0"},
        },
        "SmokeProbeSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "probe",
                "VpcId": "vpc-0123456789abcdef0",
                "SecurityGroupEgress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": egress_port,
                        "ToPort": egress_port,
                        "DestinationSecurityGroupId": t.ref("LoadBalancerSecurityGroup"),
                    }
                ],
            },
        },
        "SmokeProbeRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "probe",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": list(role_actions), "Resource": "*"}],
                        },
                    }
                ],
            },
        },
        "SmokeProbeFunction": {"Type": "AWS::Lambda::Function", "Properties": function},
        "SmokeProbeLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"RetentionInDays": 30} if retention else {},
        },
    }
    if ingress:
        resources["LoadBalancerIngressFromSmokeProbe80"] = {
            "Type": "AWS::EC2::SecurityGroupIngress",
            "Properties": {"GroupId": t.ref("LoadBalancerSecurityGroup"), "IpProtocol": "tcp", "FromPort": 80,
                           "ToPort": 80, "SourceSecurityGroupId": t.ref("SmokeProbeSecurityGroup")},
        }  # fmt: skip
    for az in (1, 2):
        resources[f"PrivateSubnet{az}"] = {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": "vpc-0123456789abcdef0", "CidrBlock": f"10.0.{az}.0/24",
                           "Tags": [{"Key": "deployctl:environment", "Value": subnet_environment}]},
        }  # fmt: skip
    outputs = {"SmokeProbeFunction": {"Value": t.ref("SmokeProbeFunction")}} if output else {}
    return {"Resources": resources, "Outputs": outputs}


def _vllm_parameter(pattern: str | None, version: str | None = "0.34.0") -> dict[str, Any]:
    parameter: dict[str, Any] = {"Type": "String"}
    if pattern is not None:
        parameter["AllowedPattern"] = pattern
    metadata = {"deployctl": {"vllm_version": version}} if version else {}
    topic = {"Topic": {"Type": "AWS::SNS::Topic"}}
    return {"Metadata": metadata, "Parameters": {"VllmImageTag": parameter}, "Resources": topic}


CASES = [
    Case(
        "E9001",
        "wildcard ValueFrom",
        _task(
            Secrets=[
                {
                    "Name": "KEY",
                    "ValueFrom": {
                        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:"
                        "${AWS::Region}:${AWS::AccountId}:secret:team/openai-??????"
                    },
                }
            ]
        ),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Secrets/0/ValueFrom",
        "secret KEY: ValueFrom 'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
        "team/openai-??????' is an IAM wildcard; use the secret's full ARN",
        _task(
            Secrets=[
                {"Name": "KEY", "ValueFrom": t.SECRET_ARN},
                {"Name": "OTHER", "ValueFrom": "team/openai"},
            ]
        ),
    ),
    Case(
        "E9001",
        "wildcard in a log driver secret",
        _task(
            LogConfiguration={
                "LogDriver": "splunk",
                "SecretOptions": [
                    {
                        "Name": "token",
                        "ValueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:splunk*",
                    }
                ],
            }
        ),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/LogConfiguration/SecretOptions/0/ValueFrom",
        "secret token: ValueFrom",
        _task(
            LogConfiguration={
                "LogDriver": "splunk",
                "SecretOptions": [{"Name": "token", "ValueFrom": t.SECRET_ARN}],
            }
        ),
    ),
    Case(
        "E9002",
        "retained log group with a fixed name",
        _retained("Retain", LogGroupName="/deployctl/prod/x"),
        "Resources/LogGroup/DeletionPolicy",
        "LogGroup has a fixed name (LogGroupName) and DeletionPolicy Retain: a failed create leaves it",
        _retained("RetainExceptOnCreate", LogGroupName="/deployctl/prod/x"),
    ),
    Case(
        "E9002",
        "retained bucket with a fixed name (names come from the registry schema)",
        {
            "Resources": {
                "Bucket": {
                    "Type": "AWS::S3::Bucket",
                    "DeletionPolicy": "Retain",
                    "UpdateReplacePolicy": "Retain",
                    "Properties": {"BucketName": "my-bucket-x"},
                }
            }
        },
        "Resources/Bucket/DeletionPolicy",
        "Bucket has a fixed name (BucketName)",
        {
            "Resources": {
                "Bucket": {
                    "Type": "AWS::S3::Bucket",
                    "DeletionPolicy": "Retain",
                    "UpdateReplacePolicy": "Retain",
                    "Properties": {},
                }
            }
        },
    ),
    Case(
        "E9003",
        "protected instances and nothing to lift the protection",
        t.gpu_ecs(releaser=False),
        "Resources/InstanceGroup",
        "InstanceGroup: capacity provider CapacityProvider has ManagedTerminationProtection ENABLED, "
        "but no custom resource is given the group",
        t.gpu_ecs(),
    ),
    Case(
        "E9003",
        "service not after the association",
        _service_depends_on("ReleaseScaleInProtection"),
        "Resources/Service",
        "Service runs on InstanceGroup but does not depend on CapacityProviderAssociation",
        t.gpu_ecs(protection=False, releaser=False),
    ),
    Case(
        "E9004",
        "no room for a new task at full scale",
        t.gpu_ecs(max_size=4, max_tasks=4),
        "Resources/Service/Properties/DeploymentConfiguration",
        "Service: at its maximum of 4 task(s) a deployment keeps 4 running (MinimumHealthyPercent 100) but "
        "InstanceGroup MaxSize is 4",
        t.gpu_ecs(max_size=4, max_tasks=4, min_healthy=50),
    ),
    Case(
        "E9004",
        "a one-task service that cannot stop first",
        t.gpu_ecs(max_size=1, max_tasks=1),
        "Resources/Service/Properties/DeploymentConfiguration",
        "set MaxSize to at least 2 or lower MinimumHealthyPercent",
        t.gpu_ecs(max_size=2, max_tasks=1),
    ),
    Case(
        "E9005",
        "reserved concurrency",
        _lambda(ReservedConcurrentExecutions=1),
        "Resources/RotationFunction/Properties/ReservedConcurrentExecutions",
        "RotationFunction sets ReservedConcurrentExecutions",
        _lambda(),
    ),
    Case(
        "E9006",
        "private DNS in a VPC the stack does not create",
        {"Resources": {"LogsEndpoint": t.interface_endpoint("vpc-0123456789abcdef0")}},
        "Resources/LogsEndpoint/Properties/PrivateDnsEnabled",
        "LogsEndpoint enables private DNS in a VPC this stack does not create",
        {
            "Resources": {
                "LogsEndpoint": t.interface_endpoint(
                    "vpc-0123456789abcdef0", metadata={"deployctl": {"endpoint_private_dns": "explicit"}}
                )
            }
        },
    ),
    Case(
        "E9006",
        "private DNS in our own VPC is fine",
        {
            "Resources": {
                "LogsEndpoint": t.interface_endpoint(
                    "vpc-0123456789abcdef0", metadata={"deployctl": {"endpoint_private_dns": True}}
                )
            }
        },
        "Resources/LogsEndpoint/Properties/PrivateDnsEnabled",
        "deployctl.endpoint_private_dns: explicit",
        t.merged(t.vpc(), {"Resources": {"LogsEndpoint": t.interface_endpoint(t.ref("Vpc"))}}),
    ),
    Case(
        "E9007",
        "bridge network with a hop limit of 1",
        t.ec2_group(hop_limit=1),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/MetadataOptions/HttpPutResponseHopLimit",
        "LaunchTemplate runs containers on Docker's bridge network with an IMDS hop limit of 1",
        t.ec2_group(hop_limit=2),
    ),
    Case(
        "E9007",
        "host network needs no extra hop",
        _no_metadata_options(),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/MetadataOptions",
        "set MetadataOptions HttpTokens to required",
        t.ec2_group(hop_limit=1, user_data="#!/bin/bash\ndocker run --detach --network host ${Image}\n"),
    ),
    Case(
        "E9008",
        "no signals",
        t.ec2_group(rolling={"MaxBatchSize": 1, "MinInstancesInService": 1, "PauseTime": "PT15M"}),
        "Resources/InstanceGroup/UpdatePolicy/AutoScalingRollingUpdate",
        "InstanceGroup: rolling updates need WaitOnResourceSignals true",
        t.ec2_group(),
    ),
    Case(
        "E9008",
        "no creation signal",
        t.ec2_group(signal=False),
        "Resources/InstanceGroup",
        "needs a CreationPolicy ResourceSignal",
        t.ec2_group(),
    ),
    Case(
        "E9008",
        "pause shorter than the grace period",
        t.ec2_group(rolling={**ROLLING, "PauseTime": "PT10M"}),
        "Resources/InstanceGroup/UpdatePolicy/AutoScalingRollingUpdate/PauseTime",
        "PauseTime PT10M is shorter than the HealthCheckGracePeriod of 900 s",
        t.ec2_group(rolling={**ROLLING, "PauseTime": "PT1H"}),
    ),
    Case(
        "E9008",
        "a one-instance group that cannot replace",
        t.ec2_group(max_size=1),
        "Resources/InstanceGroup/UpdatePolicy/AutoScalingRollingUpdate/MinInstancesInService",
        "MinInstancesInService 1 must be less than MaxSize 1",
        t.ec2_group(max_size=2),
    ),
    Case(
        "E9008",
        "a one-instance group with an outage on each update",
        t.ec2_group(rolling={**ROLLING, "MinInstancesInService": 0}),
        "Resources/InstanceGroup/UpdatePolicy/AutoScalingRollingUpdate/MinInstancesInService",
        "MinInstancesInService 0 with MinSize 1 stops serving on every update",
        t.ec2_group(rolling={**ROLLING, "MinInstancesInService": 0}, min_size=0),
    ),
    Case(
        "E9009",
        "keep-alive unset",
        _gateway_task(None),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "TaskDefinition: the gateway does not set GATEWAY_KEEP_ALIVE_TIMEOUT; set it above the ALB's 600 s",
        _gateway_task("605"),
    ),
    Case(
        "E9009",
        "keep-alive shorter than the idle timeout",
        _gateway_task("75"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "GATEWAY_KEEP_ALIVE_TIMEOUT 75 s is not longer than the ALB idle timeout of 600 s",
        _gateway_task("75", idle=None),  # the default idle timeout is 60 s
    ),
    Case(
        "E9009",
        "keep-alive from a docker run in user data",
        _ec2_keep_alive("600"),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/UserData",
        "LaunchTemplate: GATEWAY_KEEP_ALIVE_TIMEOUT 600 s is not longer",
        _ec2_keep_alive("605"),
    ),
    Case(
        "E9010",
        "no DescribeEndpoint",
        _sagemaker("sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"),
        "Resources/TaskRole/Properties/Policies",
        "TaskRole (task role of the SageMaker gateway in TaskDefinition) does not allow "
        "sagemaker:DescribeEndpoint",
        _sagemaker(*ALL_SAGEMAKER),
    ),
    Case(
        "E9010",
        "wildcards in IAM actions count",
        _sagemaker("sagemaker:Invoke*"),
        "Resources/TaskRole/Properties/Policies",
        "does not allow sagemaker:DescribeEndpoint",
        _sagemaker("sagemaker:Invoke*", "sagemaker:Describe*"),
    ),
    Case(
        "E9011",
        "upstream timeout unset",
        _sagemaker(*ALL_SAGEMAKER, timeout=None),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "the SageMaker gateway's GATEWAY_UPSTREAM_TIMEOUT is not set",
        _sagemaker(*ALL_SAGEMAKER, timeout="900"),
    ),
    Case(
        "E9011",
        "upstream timeout at botocore's default",
        _sagemaker(*ALL_SAGEMAKER, timeout="60"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "GATEWAY_UPSTREAM_TIMEOUT is 60 s",
        _sagemaker(*ALL_SAGEMAKER, timeout="61"),
    ),
    Case(
        "E9012",
        "no S3 gateway endpoint",
        t.vpc(s3=False),
        "Resources/Vpc",
        "Vpc has no S3 gateway endpoint: S3 traffic from private subnets goes through NAT at per-GB "
        "prices; add a Gateway VPCEndpoint for com.amazonaws.<region>.s3 on PrivateRouteTable1, "
        "PrivateRouteTable2",
        t.vpc(),
    ),
    Case(
        "E9012",
        "an S3 endpoint missing a private route table",
        t.vpc(tables=("PrivateRouteTable1",)),
        "Resources/S3Endpoint/Properties/RouteTableIds",
        "S3Endpoint is not on the private route tables PrivateRouteTable2",
        t.vpc(tables=("PrivateRouteTable1", "PrivateRouteTable2", "PublicRouteTable")),
    ),
    Case(
        "E9013",
        "no invoke permission",
        t.rotation(permission=False),
        "Resources/ApiKeyRotation/Properties/RotationLambdaARN",
        "ApiKeyRotation: RotationFunction has no Lambda permission for secretsmanager.amazonaws.com",
        t.rotation(),
    ),
    Case(
        "E9013",
        "permission for another secret",
        t.merged(
            t.rotation(source="OtherSecret"),
            {"Resources": {"OtherSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}}}},
        ),
        "Resources/ApiKeyRotation/Properties/RotationLambdaARN",
        "with SourceArn ApiKeySecret",
        t.rotation(),
    ),
    Case(
        "E9013",
        "schedule created before the permission",
        t.rotation(depends=False),
        "Resources/ApiKeyRotation",
        "ApiKeyRotation does not depend on RotationFunctionPermission",
        t.rotation(),
    ),
    Case(
        "E9014",
        "key policy without CloudWatch Logs",
        t.logs_key(actions=("kms:Decrypt*",)),
        "Resources/EncryptionKey/Properties/KeyPolicy",
        "EncryptionKey encrypts log group LogGroup but its key policy does not allow "
        "logs.<region>.amazonaws.com kms:Encrypt, kms:GenerateDataKey",
        t.logs_key(),
    ),
    Case(
        "E9014",
        "no encryption context condition",
        t.logs_key(condition=False),
        "Resources/EncryptionKey/Properties/KeyPolicy",
        "the statement for CloudWatch Logs has no kms:EncryptionContext:aws:logs:arn condition",
        t.logs_key(),
    ),
    Case(
        "E9015",
        "scheduled group reset by every update",
        _scheduled({"AutoScalingRollingUpdate": {**ROLLING, "SuspendProcesses": ["ScheduledActions"]}}),
        "Resources/InstanceGroup/UpdatePolicy",
        "InstanceGroup has scheduled actions: set UpdatePolicy AutoScalingScheduledAction "
        "IgnoreUnmodifiedGroupSizeProperties true",
        _scheduled(
            {
                "AutoScalingRollingUpdate": {**ROLLING, "SuspendProcesses": ["ScheduledActions"]},
                "AutoScalingScheduledAction": {"IgnoreUnmodifiedGroupSizeProperties": True},
            }
        ),
    ),
    Case(
        "E9015",
        "schedules not suspended during a rolling update",
        _scheduled(
            {
                "AutoScalingRollingUpdate": ROLLING,
                "AutoScalingScheduledAction": {"IgnoreUnmodifiedGroupSizeProperties": True},
            }
        ),
        "Resources/InstanceGroup/UpdatePolicy/AutoScalingRollingUpdate",
        "add ScheduledActions to SuspendProcesses",
        t.ec2_group(),  # no schedules: nothing to suspend
    ),
    Case(
        "E9016",
        "instances may boot before the NAT route",
        _egress(),
        "Resources/InstanceGroup",
        "InstanceGroup runs user data that needs the network but does not depend on PrivateDefaultRoute1, "
        "PrivateSubnet1Routes",
        _egress("PrivateDefaultRoute1", "PrivateSubnet1Routes"),
    ),
    Case(
        "E9016",
        "one of the two is not enough",
        _egress("PrivateDefaultRoute1"),
        "Resources/InstanceGroup",
        "does not depend on PrivateSubnet1Routes",
        _egress(user_data="#!/bin/bash\necho ECS_CLUSTER=c >> /etc/ecs/ecs.config\n"),  # nothing to reach
    ),
    Case(
        "E9007",
        "no metadata service at all",
        _imds(HttpEndpoint="disabled"),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/MetadataOptions/HttpEndpoint",
        "LaunchTemplate runs containers that need the instance role but disables the metadata service",
        _imds(HttpEndpoint="enabled"),
    ),
    Case(
        "E9022",
        "autoscaled endpoint named without its instance type",
        _scaled_endpoint("prod-llm"),
        "Resources/Endpoint/Properties/EndpointName",
        "Endpoint is scaled by Application Auto Scaling but its name prod-llm does not contain its instance "
        "type (g5-2xlarge)",
        _scaled_endpoint("prod-llm-g5-2xlarge"),
    ),
    Case(
        "E9022",
        "a name with another instance type is not enough",
        _scaled_endpoint("prod-llm-g5-xlarge", "ml.g5.12xlarge"),
        "Resources/Endpoint/Properties/EndpointName",
        "does not contain its instance type (g5-12xlarge)",
        _scaled_endpoint("prod-llm", scaled=False),  # UpdateEndpoint changes an unscaled variant's type
    ),
    Case(
        "E9055",
        "a NoEcho parameter",
        {
            "Parameters": {"Token": {"Type": "String", "NoEcho": True}},
            "Resources": {
                "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "Token"}}}
            },
        },
        "Parameters/Token/NoEcho",
        "parameter Token is NoEcho: a release cannot record its value",
        {
            "Parameters": {"Token": {"Type": "String"}},
            "Resources": {
                "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "Token"}}}
            },
        },
    ),
    Case(
        "E9023",
        "budget with a fixed name",
        _budget(BudgetName="deployctl-prod-llm"),
        "Resources/MonthlyBudget/Properties/Budget/BudgetName",
        "MonthlyBudget has a fixed BudgetName: a change of its notifications replaces it",
        _budget(),
    ),
    Case(
        "E9017",
        "signals with no way out of the private subnet",
        _signalled(nat=False),
        "Resources/InstanceGroup",
        "InstanceGroup waits for instance signals, but its subnet PrivateSubnet1 has no default route out "
        "and the VPC no com.amazonaws.<region>.cloudformation interface endpoint",
        _signalled(nat=False, endpoint=True),
    ),
    Case(
        "E9017",
        "a NAT route carries the signal",
        _signalled(nat=False),
        "Resources/InstanceGroup",
        "add the endpoint or a NAT gateway",
        _signalled(nat=True),
    ),
    Case(
        "E9018",
        "four GPUs reserved, vLLM's default of one used",
        _gpu_task(4, {"max_model_len": 8192}),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "TaskDefinition: container gateway reserves 4 GPU(s) but its ENGINE_ARGS parallel sizes use 1",
        _gpu_task(4, {"tensor_parallel_size": 4}),
    ),
    Case(
        "E9018",
        "more GPUs than reserved",
        _gpu_task(4, {"tensor_parallel_size": 4, "pipeline_parallel_size": 2}),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "parallel sizes use 8; set tensor_parallel_size so that they multiply to 4",
        _gpu_task(4, {"tensor_parallel_size": 2, "pipeline-parallel-size": 2}),
    ),
    Case(
        "E9019",
        "CPU tracking on a task without Cpu",
        _cpu_tracking(task_cpu=False),
        "Resources/ServiceCpuPercentPolicy/Properties/TargetTrackingScalingPolicyConfiguration",
        "ServiceCpuPercentPolicy tracks ECSServiceAverageCPUUtilization of Service, whose task definition "
        "sets no Cpu",
        _cpu_tracking(task_cpu=True),
    ),
    Case(
        "E9019",
        "requests need no CPU reservation",
        _cpu_tracking(task_cpu=False),
        "Resources/ServiceCpuPercentPolicy/Properties/TargetTrackingScalingPolicyConfiguration",
        "track ALBRequestCountPerTarget",
        _cpu_tracking(task_cpu=False, metric="ECSServiceAverageMemoryUtilization"),
    ),
    Case(
        "E9045",
        "the generic tag pattern admits every version",
        _vllm_parameter(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
        "Parameters/VllmImageTag/AllowedPattern",
        "also admits 0.35.0-0123456789abcdef0123456789abcdef01234567",
        _vllm_parameter(r"^0\.34\.0-[0-9a-f]{40}$"),
    ),
    Case(
        "E9045",
        "an unescaped dot admits other strings",
        _vllm_parameter(r"^0.34.0-[0-9a-f]{40}$", version="0.34.0"),
        "Parameters/VllmImageTag/AllowedPattern",
        "also admits 0x34x0-0123456789abcdef0123456789abcdef01234567",
        _vllm_parameter(r"^0\.34\.0-[0-9a-f]{40}$"),
    ),
    Case(
        "E9045",
        "another version's pattern",
        _vllm_parameter(r"^0\.31\.0-[0-9a-f]{40}$"),
        "Parameters/VllmImageTag/AllowedPattern",
        "refuses 0.34.0's own tag",
        _vllm_parameter(r"^0\.34\.0-[0-9a-f]{40}$"),
    ),
    Case(
        "E9045",
        "no version in the metadata",
        _vllm_parameter(r"^0\.34\.0-[0-9a-f]{40}$", version=None),
        "Parameters/VllmImageTag",
        "sets no Metadata.deployctl.vllm_version",
        _vllm_parameter(r"^0\.34\.0-[0-9a-f]{40}$"),
    ),
    Case(
        "E9035",
        "a Spot launch template under a mixed instances policy",
        _mixed("g6.xlarge", "g5.xlarge", market=True),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/InstanceMarketOptions",
        "LaunchTemplate sets InstanceMarketOptions and InstanceGroup launches it with a mixed instances "
        "policy",
        _mixed("g6.xlarge", "g5.xlarge"),
    ),
    Case(
        "E9036",
        "the template names a type the overrides do not launch",
        _mixed("g6.xlarge", "g5.xlarge", template_type="g6e.xlarge"),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/InstanceType",
        "LaunchTemplate names g6e.xlarge but InstanceGroup launches only its overrides (g6.xlarge, "
        "g5.xlarge); set InstanceType to g6.xlarge",
        _mixed("g6.xlarge", "g5.xlarge", template_type="g5.xlarge"),
    ),
    Case(
        "E9037",
        "a fallback type with more GPUs",
        _mixed("g5.xlarge", "g5.12xlarge"),
        "Resources/InstanceGroup/Properties/MixedInstancesPolicy/LaunchTemplate/Overrides/1/InstanceType",
        "override g5.12xlarge has 4 GPU(s) on x86_64, the first override g5.xlarge 1 on x86_64",
        _mixed("g5.xlarge", "g6.xlarge", "g4dn.xlarge", "m5.large"),
    ),
    Case(
        "E9037",
        "a fallback type of another architecture",
        _mixed("g4dn.xlarge", "g5g.xlarge"),
        "Resources/InstanceGroup/Properties/MixedInstancesPolicy/LaunchTemplate/Overrides/1/InstanceType",
        "override g5g.xlarge has 1 GPU(s) on arm64",
        _mixed("g4dn.xlarge", "g4dn.2xlarge"),
    ),
    Case(
        "E9038",
        "a task sized to the larger fallback type",
        _mixed("g6e.xlarge", "g5.xlarge", memory=29184),
        "Resources/TaskDefinition/Properties",
        "TaskDefinition (service Service) reserves 29184 MiB of memory (16 GiB there): it cannot be placed "
        "on g5.xlarge, an override of InstanceGroup",
        _mixed("g6e.xlarge", "g5.xlarge", memory=14592),
    ),
    Case(
        "E9038",
        "more GPUs than a fallback type has",
        _mixed("g5.12xlarge", "g5.xlarge", gpus=4),
        "Resources/TaskDefinition/Properties",
        "reserves 4 GPU(s) (1 there)",
        _mixed("g5.12xlarge", "g6.12xlarge", gpus=4),
    ),
    Case(
        "E9039",
        "Spot container instances that do not drain",
        _mixed("g6.xlarge", "g5.xlarge", draining=False),
        "Resources/LaunchTemplate/Properties/LaunchTemplateData/UserData",
        "InstanceGroup may launch Spot instances into an ECS cluster but LaunchTemplate's user data does "
        "not set ECS_ENABLE_SPOT_INSTANCE_DRAINING=true",
        _mixed("g6.xlarge", "g5.xlarge", spot=False, draining=False),
    ),
    Case(
        "E9050",
        "an internal load balancer without a probe",
        _probe_stack(output=False),
        "Resources/LoadBalancer",
        "LoadBalancer is internal but no SmokeProbeFunction output names a Lambda function",
        _probe_stack(),
    ),
    Case(
        "E9050",
        "a probe outside the load balancer's subnets",
        _probe_stack(subnets=[{"Ref": "PrivateSubnet1"}]),
        "Resources/SmokeProbeFunction/Properties/VpcConfig",
        "must be attached to the subnets of LoadBalancer",
        _probe_stack(subnets=[{"Ref": "PrivateSubnet2"}, {"Ref": "PrivateSubnet1"}]),
    ),
    Case(
        "E9070",
        "a probe without the probe tag",
        _probe_stack(tags={"deployctl:environment": "prod"}),
        "Resources/SmokeProbeFunction/Properties/Tags",
        "SmokeProbeFunction must carry the tag deployctl:role=smoke-probe",
        _probe_stack(),
    ),
    Case(
        "E9070",
        "a probe without its environment's tag",
        _probe_stack(tags={"deployctl:role": "smoke-probe"}),
        "Resources/SmokeProbeFunction/Properties/Tags",
        "must carry the tag deployctl:environment",
        _probe_stack(tags={"deployctl:role": "smoke-probe", "deployctl:environment": "prod"}),
    ),
    Case(
        "E9070",
        "a probe tagged for another environment than its stack",
        _probe_stack(tags={"deployctl:role": "smoke-probe", "deployctl:environment": "dev"}),
        "Resources/SmokeProbeFunction/Properties/Tags",
        "SmokeProbeFunction's deployctl:environment tag is 'dev', the stack's other resources say prod",
        _probe_stack(
            tags={"deployctl:role": "smoke-probe", "deployctl:environment": "dev"}, subnet_environment="dev"
        ),
    ),
    Case(
        "E9070",
        "a probe with a name of its own",
        _probe_stack(function_name="smoke-probe"),
        "Resources/SmokeProbeFunction/Properties/FunctionName",
        "SmokeProbeFunction sets FunctionName: the invoke grants match `<env>-*`",
        _probe_stack(),
    ),
    Case(
        "E9051",
        "the load balancer does not let the probe in",
        _probe_stack(ingress=False),
        "Resources/LoadBalancer/Properties/SecurityGroups",
        "no security group of LoadBalancer allows ingress from the security group of SmokeProbeFunction on "
        "port 80",
        _probe_stack(),
    ),
    Case(
        "E9051",
        "the probe may not go out to the listener's port",
        _probe_stack(egress_port=443),
        "Resources/SmokeProbeFunction/Properties/VpcConfig/SecurityGroupIds",
        "allows egress to a security group of LoadBalancer on port 80",
        _probe_stack(egress_port=80),
    ),
    Case(
        "E9052",
        "a Timeout shorter than its checks' request timeouts",
        _probe_stack(timeout=300),
        "Resources/SmokeProbeFunction/Properties/Timeout",
        "SmokeProbeFunction Timeout 300 is shorter than 6 checks x 120 s + 15 s = 735 s",
        _probe_stack(timeout=735),
    ),
    Case(
        "E9052",
        "no request timeout for the checks",
        _probe_stack(request=None),
        "Resources/SmokeProbeFunction/Properties/Environment",
        "sets no literal SMOKE_REQUEST_TIMEOUT_SECONDS",
        _probe_stack(request="60", timeout=400),
    ),
    Case(
        "E9052",
        "request timeouts that no Lambda Timeout can outlast",
        _probe_stack(request="200", timeout=1300),
        "Resources/SmokeProbeFunction/Properties/Environment",
        "exceeds Lambda's 900 s ceiling",
        _probe_stack(request="140", timeout=900),
    ),
    Case(
        "E9053",
        "a function logging to Lambda's own log group",
        _probe_stack(logs=False),
        "Resources/SmokeProbeFunction/Properties",
        "SmokeProbeFunction names no log group of this stack in LoggingConfig.LogGroup",
        _probe_stack(),
    ),
    Case(
        "E9053",
        "a log group that keeps logs forever",
        _probe_stack(retention=False),
        "Resources/SmokeProbeLogGroup/Properties",
        "SmokeProbeLogGroup, the log group of SmokeProbeFunction, sets no RetentionInDays",
        _probe_stack(retention=True),
    ),
    Case(
        "E9054",
        "a VPC function whose role cannot delete its interfaces",
        _probe_stack(role_actions=("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces")),
        "Resources/SmokeProbeRole/Properties",
        "does not grant ec2:DeleteNetworkInterface",
        _probe_stack(role_actions=("ec2:*",)),
    ),
    Case(
        "E9030",
        "a per-client sum is no per-task gauge",
        _gateway_scaled({"MetricName": "Requests"}),
        _QUEUE_POLICY + "/CustomizedMetricSpecification",
        "ServiceQueueDepthPerTaskPolicy tracks no metric the gateway publishes: 'Requests' is not a per-task "
        "gauge the gateway publishes",
        _gateway_scaled(),
    ),
    Case(
        "E9030",
        "Sum over the tasks is no per-task average",
        _gateway_scaled({"Statistic": "Sum"}),
        _QUEUE_POLICY + "/CustomizedMetricSpecification",
        "statistic 'Sum' is not Average",
        _gateway_scaled({"MetricName": "EngineKvCacheUsage"}),
    ),
    Case(
        "E9030",
        "a dimension set the gauges are not published with",
        _gateway_scaled(
            {
                "Dimensions": [
                    {"Name": "Stack", "Value": t.ref("AWS::StackName")},
                    {"Name": "Client", "Value": "a"},
                ]
            }
        ),
        _QUEUE_POLICY + "/CustomizedMetricSpecification",
        "dimensions ['Stack', 'Client'] are not the published ['Stack']",
        _gateway_scaled({"MetricName": "RequestsInFlight"}),
    ),
    Case(
        "E9030",
        "the gateway's gauge in another namespace, on an EC2 group",
        t.merged(
            _ec2_gateway_scaled(t.ref("AWS::StackName")),
            {
                "Resources": {
                    "GroupRequestsInFlightPerTaskPolicy": {
                        "Type": "AWS::AutoScaling::ScalingPolicy",
                        "Properties": {
                            "AutoScalingGroupName": t.ref("InstanceGroup"),
                            "PolicyType": "TargetTrackingScaling",
                            "TargetTrackingConfiguration": {
                                "TargetValue": 16.0,
                                "CustomizedMetricSpecification": {
                                    **_QUEUE_METRIC,
                                    "Namespace": "Gateway",
                                    "MetricName": "RequestsInFlight",
                                },
                            },
                        },
                    }
                }
            },
        ),
        "Resources/GroupRequestsInFlightPerTaskPolicy/Properties/TargetTrackingConfiguration/"
        "CustomizedMetricSpecification",
        "namespace 'Gateway' is not the gateway's deployctl/Gateway",
        _ec2_gateway_scaled(t.ref("AWS::StackName")),
    ),
    Case(
        "E9031",
        "the gateway's grace outlasts ECS's default StopTimeout",
        _gateway_scaled(stop=None, ENGINE_MODEL=None, SUPERVISOR_GRACE=None, GATEWAY_SHUTDOWN_GRACE="30"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "TaskDefinition: container gateway: GATEWAY_SHUTDOWN_GRACE 30 s does not end before the "
        "StopTimeout of 30 s, when ECS kills the container",
        _gateway_scaled(stop=40, ENGINE_MODEL=None, SUPERVISOR_GRACE=None, GATEWAY_SHUTDOWN_GRACE="30"),
    ),
    Case(
        "E9031",
        "the supervisor kills the gateway mid-drain",
        _gateway_scaled(GATEWAY_SHUTDOWN_GRACE="55"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "GATEWAY_SHUTDOWN_GRACE 55 s is not below SUPERVISOR_GRACE 55 s",
        _gateway_scaled(),
    ),
    Case(
        "E9031",
        "two supervisor graces do not fit (its default 60 s each)",
        _gateway_scaled(stop=100, SUPERVISOR_GRACE=None),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "up to SUPERVISOR_GRACE 60 s each, which does not fit in the StopTimeout of 100 s",
        _gateway_scaled(stop=120, SUPERVISOR_GRACE=None),
    ),
    Case(
        "E9032",
        "gauges written less than once a minute",
        _gateway_scaled(GATEWAY_GAUGE_INTERVAL="120"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "GATEWAY_GAUGE_INTERVAL 120 s leaves minutes without the data points "
        "ServiceQueueDepthPerTaskPolicy tracks",
        _gateway_scaled(GATEWAY_GAUGE_INTERVAL="60"),
    ),
    Case(
        "E9032",
        "gauges turned off",
        _gateway_scaled(GATEWAY_GAUGE_METRICS="false"),
        _QUEUE_POLICY + "/CustomizedMetricSpecification",
        "ServiceQueueDepthPerTaskPolicy tracks EngineRequestsWaiting, but no gateway in the template "
        "publishes the gauges",
        _gateway_scaled(GATEWAY_GAUGE_METRICS="true"),
    ),
    Case(
        "E9032",
        "vLLM's queue behind an external provider",
        _gateway_scaled(GATEWAY_UPSTREAM="external", ENGINE_MODEL=None, SUPERVISOR_GRACE=None),
        _QUEUE_POLICY + "/CustomizedMetricSpecification",
        "no gateway in the template reads vLLM (GATEWAY_UPSTREAM vllm)",
        _gateway_scaled(
            {"MetricName": "RequestsInFlight"},
            GATEWAY_UPSTREAM="external",
            ENGINE_MODEL=None,
            SUPERVISOR_GRACE=None,
        ),
    ),
    Case(
        "E9032",
        "in-flight requests counted per worker process",
        _gateway_scaled({"MetricName": "RequestsInFlight"}, GATEWAY_WORKERS="4"),
        "Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment",
        "GATEWAY_WORKERS 4: each process publishes its own RequestsInFlight, so "
        "ServiceQueueDepthPerTaskPolicy would track a per-process average",
        _gateway_scaled(GATEWAY_WORKERS="4"),
    ),
    Case(
        "E9033",
        "SageMaker's concurrency metric on an ECS service",
        _predefined(
            t.gpu_ecs(), "ServiceScalableTarget", "SageMakerVariantConcurrentRequestsPerModelHighResolution"
        ),
        "Resources/TrackingPolicy/Properties/TargetTrackingScalingPolicyConfiguration/PredefinedMetricSpecification/"
        "PredefinedMetricType",
        "TrackingPolicy tracks SageMakerVariantConcurrentRequestsPerModelHighResolution, a metric of "
        "sagemaker:variant:DesiredInstanceCount, on a target that scales ecs:service:DesiredCount",
        _predefined(
            _scaled_endpoint("llm-g5"),
            "EndpointScalableTarget",
            "SageMakerVariantConcurrentRequestsPerModelHighResolution",
        ),
    ),
    Case(
        "E9033",
        "an inference component's metric on a variant",
        _predefined(
            _scaled_endpoint("llm-g5"),
            "EndpointScalableTarget",
            "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
        ),
        "Resources/TrackingPolicy/Properties/TargetTrackingScalingPolicyConfiguration/PredefinedMetricSpecification/"
        "PredefinedMetricType",
        "a metric of sagemaker:inference-component:DesiredCopyCount, on a target that scales "
        "sagemaker:variant:DesiredInstanceCount",
        _predefined(t.gpu_ecs(), "ServiceScalableTarget", "ECSServiceAverageMemoryUtilization"),
    ),
    Case(
        "E9034",
        "a literal stack name the gateways do not publish",
        _gateway_scaled({"Dimensions": [{"Name": "Stack", "Value": "prod-other"}]}),
        _QUEUE_POLICY + "/CustomizedMetricSpecification/Dimensions/0/Value",
        'ServiceQueueDepthPerTaskPolicy tracks Stack=prod-other, but the gateways publish Stack={"Ref": '
        '"AWS::StackName"} (GATEWAY_METRICS_STACK)',
        _gateway_scaled(
            {"Dimensions": [{"Name": "Stack", "Value": "prod-other"}]}, GATEWAY_METRICS_STACK="prod-other"
        ),
    ),
    Case(
        "E9034",
        "a gateway without GATEWAY_METRICS_STACK, on an EC2 group",
        _ec2_gateway_scaled(t.ref("AWS::StackName"), published="local"),
        "Resources/GroupRequestsInFlightPerTaskPolicy/Properties/TargetTrackingConfiguration/"
        "CustomizedMetricSpecification/Dimensions/0/Value",
        "but the gateways publish Stack=local",
        _ec2_gateway_scaled(t.ref("AWS::StackName")),
    ),
]


CASES += dashboard_cases.cases(Case)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}-{c.name}" for c in CASES])
def test_the_rule_finds_the_broken_template(case: Case) -> None:
    found = [f for f in findings(case.failing) if f.code == case.rule]
    assert found, f"{case.rule} found nothing"
    assert any(f.field == case.path and case.message in f.message for f in found), [
        (f.field, f.message) for f in found
    ]
    assert all("\n" not in f.message and f.location.line > 0 for f in found)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}-{c.name}" for c in CASES])
def test_the_rule_accepts_the_kept_contract(case: Case) -> None:
    assert [(f.code, f.field, f.message) for f in findings(case.passing) if f.code == case.rule] == []


def test_every_rule_has_cases(rules: list[Any]) -> None:
    assert {r.id for r in rules} == {c.rule for c in CASES}
