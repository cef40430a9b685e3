"""Small templates for the rule tests: each builder gives a passing shape; tests break one thing in it."""

from __future__ import annotations

import copy
from typing import Any

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team/openai-AbCdEf"


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn(name: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, "Arn"]}


def container(**extra: Any) -> dict[str, Any]:
    return {"Name": "gateway", "Image": "example/gateway:1", "Essential": True, **extra}


def task_definition(*containers: dict[str, Any], role: str | None = "TaskRole") -> dict[str, Any]:
    p: dict[str, Any] = {"ContainerDefinitions": list(containers), "Cpu": "256", "Memory": "512"}
    if role:
        p["TaskRoleArn"] = arn(role)
    return {"Type": "AWS::ECS::TaskDefinition", "Properties": p}


def role(*actions: str) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "task",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
                    },
                }
            ],
        },
    }


def env(**values: Any) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": v} for k, v in values.items()]


def gpu_ecs(
    *,
    protection: bool = True,
    releaser: bool = True,
    max_size: int = 5,
    max_tasks: int = 4,
    min_healthy: int = 100,
) -> dict[str, Any]:
    """An ECS service on its own GPU Auto Scaling group through a capacity provider."""
    resources: dict[str, Any] = {
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "LaunchTemplate": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {"LaunchTemplateData": {"ImageId": "ami-12345678", "InstanceType": "g5.xlarge"}},
        },
        "InstanceGroup": {
            "Type": "AWS::AutoScaling::AutoScalingGroup",
            "Properties": {
                "MinSize": "0",
                "MaxSize": str(max_size),
                "NewInstancesProtectedFromScaleIn": protection,
                "LaunchTemplate": {
                    "LaunchTemplateId": ref("LaunchTemplate"),
                    "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]},
                },
                "VPCZoneIdentifier": ["subnet-0123abcd"],
            },
        },
        "CapacityProvider": {
            "Type": "AWS::ECS::CapacityProvider",
            "Properties": {
                "AutoScalingGroupProvider": {
                    "AutoScalingGroupArn": ref("InstanceGroup"),
                    "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
                    "ManagedTerminationProtection": "ENABLED" if protection else "DISABLED",
                }
            },
        },
        "CapacityProviderAssociation": {
            "Type": "AWS::ECS::ClusterCapacityProviderAssociations",
            "Properties": {
                "Cluster": ref("Cluster"),
                "CapacityProviders": [ref("CapacityProvider")],
                "DefaultCapacityProviderStrategy": [
                    {"CapacityProvider": ref("CapacityProvider"), "Weight": 1}
                ],
            },
        },
        "TaskDefinition": task_definition(
            container(ResourceRequirements=[{"Type": "GPU", "Value": "1"}], Memory=512), role=None
        ),
        "Service": {
            "Type": "AWS::ECS::Service",
            "DependsOn": ["CapacityProviderAssociation"],
            "Properties": {
                "Cluster": ref("Cluster"),
                "TaskDefinition": ref("TaskDefinition"),
                "DesiredCount": 1,
                "CapacityProviderStrategy": [{"CapacityProvider": ref("CapacityProvider"), "Weight": 1}],
                "DeploymentConfiguration": {"MinimumHealthyPercent": min_healthy, "MaximumPercent": 200},
            },
        },
        "ServiceScalableTarget": {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "MaxCapacity": max_tasks,
                "MinCapacity": 1,
                "ResourceId": {
                    "Fn::Join": ["/", ["service", ref("Cluster"), {"Fn::GetAtt": ["Service", "Name"]}]]
                },
                "ScalableDimension": "ecs:service:DesiredCount",
                "ServiceNamespace": "ecs",
            },
        },
    }
    if releaser:
        resources["ReleaseScaleInProtection"] = {
            "Type": "Custom::ReleaseScaleInProtection",
            "Properties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:release",
                           "AutoScalingGroupName": ref("InstanceGroup")},
        }  # fmt: skip
        resources["Service"]["DependsOn"].append("ReleaseScaleInProtection")
    return {"Resources": resources}


USER_DATA_BRIDGE = "#!/bin/bash\ndocker run --detach --publish 8080:8080 --env GATEWAY_PORT='8080' ${Image}\n"


def ec2_group(
    *,
    user_data: str = USER_DATA_BRIDGE,
    hop_limit: int = 2,
    rolling: dict[str, Any] | None = None,
    signal: bool = True,
    min_size: int = 1,
    max_size: int = 2,
) -> dict[str, Any]:
    """The ec2 target's shape: a launch template whose user data runs the container, in a rolling group."""
    group: dict[str, Any] = {
        "Type": "AWS::AutoScaling::AutoScalingGroup",
        "Properties": {
            "MinSize": str(min_size),
            "MaxSize": str(max_size),
            "HealthCheckGracePeriod": 900,
            "LaunchTemplate": {
                "LaunchTemplateId": ref("LaunchTemplate"),
                "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]},
            },
            "VPCZoneIdentifier": ["subnet-0123abcd"],
        },
        "UpdatePolicy": {
            "AutoScalingRollingUpdate": rolling
            if rolling is not None
            else {
                "MaxBatchSize": 1,
                "MinInstancesInService": 1,
                "PauseTime": "PT15M",
                "WaitOnResourceSignals": True,
            }
        },
    }
    if signal:
        group["CreationPolicy"] = {"ResourceSignal": {"Count": min_size, "Timeout": "PT15M"}}
    return {
        "Resources": {
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {
                        "ImageId": "ami-12345678",
                        "InstanceType": "g6.xlarge",
                        "MetadataOptions": {
                            "HttpEndpoint": "enabled",
                            "HttpTokens": "required",
                            "HttpPutResponseHopLimit": hop_limit,
                        },
                        "UserData": {"Fn::Base64": {"Fn::Sub": [user_data, {"Image": "example/gateway:1"}]}},
                    }
                },
            },
            "InstanceGroup": group,
        }
    }


def alb(idle: str | None = "600") -> dict[str, Any]:
    attributes = [{"Key": "idle_timeout.timeout_seconds", "Value": idle}] if idle is not None else []
    return {
        "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Properties": {
            "Subnets": ["subnet-0a0a0a0a", "subnet-0b0b0b0b"],
            "LoadBalancerAttributes": attributes,
        },
    }


def vpc(
    *, s3: bool = True, tables: tuple[str, ...] = ("PrivateRouteTable1", "PrivateRouteTable2")
) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "InternetGateway": {"Type": "AWS::EC2::InternetGateway"},
        "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc")}},
        "PublicDefaultRoute": {
            "Type": "AWS::EC2::Route",
            "Properties": {
                "RouteTableId": ref("PublicRouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": ref("InternetGateway"),
            },
        },
        "PrivateRouteTable1": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc")}},
        "PrivateRouteTable2": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc")}},
    }
    if s3:
        resources["S3Endpoint"] = {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": ref("Vpc"),
                "VpcEndpointType": "Gateway",
                "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"},
                "RouteTableIds": [ref(t) for t in tables],
            },
        }
    return {"Resources": resources}


def interface_endpoint(vpc_id: Any, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {
            "VpcId": vpc_id,
            "VpcEndpointType": "Interface",
            "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.logs"},
            "PrivateDnsEnabled": True,
            "SubnetIds": ["subnet-0123abcd"],
        },
    }
    if metadata is not None:
        found["Metadata"] = metadata
    return found


def rotation(
    *, permission: bool = True, depends: bool = True, source: str = "ApiKeySecret"
) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "ApiKeySecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"GenerateSecretString": {}}},
        "RotationFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": "arn:aws:iam::123456789012:role/rotation",
                "Code": {"ZipFile": "def handler(event, context):\n    pass\n"},
            },
        },
        "ApiKeyRotation": {
            "Type": "AWS::SecretsManager::RotationSchedule",
            "Properties": {
                "SecretId": ref("ApiKeySecret"),
                "RotationLambdaARN": arn("RotationFunction"),
                "RotationRules": {"AutomaticallyAfterDays": 30},
            },
        },
    }
    if permission:
        resources["RotationFunctionPermission"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": arn("RotationFunction"),
                "Principal": "secretsmanager.amazonaws.com",
                "SourceArn": ref(source),
            },
        }
        if depends:
            resources["ApiKeyRotation"]["DependsOn"] = ["RotationFunctionPermission"]
    return {"Resources": resources}


def logs_key(*, condition: bool = True, actions: tuple[str, ...] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}},
        "Action": list(
            actions
            or ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")
        ),
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = {
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": {
                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
                }
            }
        }
    return {
        "Resources": {
            "EncryptionKey": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {
                                    "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                                },
                                "Action": "kms:*",
                                "Resource": "*",
                            },
                            statement,
                        ],
                    }
                },
            },
            "LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"KmsKeyId": arn("EncryptionKey"), "RetentionInDays": 30},
            },
        }
    }


def merged(*templates: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Resources": {}}
    for t in templates:
        out["Resources"].update(copy.deepcopy(t["Resources"]))
    return out
