"""What the rendered templates promise, asserted on their content for every target (not snapshots)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest

from templates.context import MANAGEMENT_TAG
from templates.iam import secret_arn_by_name
from templates.load_balancer import IDLE_TIMEOUT_SECONDS, TLS_POLICY
from templates.network import PRIVATE_DNS_ASKED
from templates.stack import MODEL_LOAD_SECONDS
from templates.targets.sagemaker import (
    ENDPOINT_NAME_MAX,
    UPSTREAM_READ_TIMEOUT_SECONDS,
    endpoint_name,
    instance_type_label,
)
from tests.templates.conftest import Built, stack_names
from tooling import certificates

# Actions AWS only authorises on "*" (or that we condition instead), each for a reason in the code.
STAR_ALLOWED = {
    "ecr:GetAuthorizationToken",
    "autoscaling:DescribeAutoScalingGroups",
    "secretsmanager:GetRandomPassword",
    "cloudwatch:PutMetricData",
    # Lambda's network interfaces in a VPC (the smoke probe): they have no ARN before Lambda makes them.
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
}


def attributes(props: dict[str, Any], key: str = "LoadBalancerAttributes") -> dict[str, Any]:
    return {a["Key"]: a["Value"] for a in props[key]}


def policies(item: Built) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in item.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(name, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


# ------------------------------------------------------------------ shared pieces, every stack


@pytest.mark.parametrize("stack", stack_names())
def test_everything_taggable_carries_the_management_tags(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    spec = item.deployment.spec
    untagged = []
    for name, resource in item.resources.items():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is None:
            continue
        pairs = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
        if pairs.get(MANAGEMENT_TAG) != "deployctl" or pairs.get("deployctl:stack") != stack:
            untagged.append(name)
        for key, value in spec.tags.items():
            assert pairs[key] == value, (name, key)
    assert untagged == []
    taggable = (
        "AWS::EC2::VPC",
        "AWS::ECS::Cluster",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::KMS::Key",
    )
    present = [r for r in item.resources.values() if r["Type"] in taggable]
    assert present and all("Tags" in r["Properties"] for r in present)


@pytest.mark.parametrize("stack", stack_names())
def test_load_balancer(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    net = item.deployment.spec.network
    alb = item.one("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == ("internet-facing" if net.public else "internal")
    attrs = attributes(alb)
    assert int(attrs["idle_timeout.timeout_seconds"]) >= 300
    assert int(attrs["idle_timeout.timeout_seconds"]) == IDLE_TIMEOUT_SECONDS
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["access_logs.s3.enabled"] == "true"
    # Termination protection guards prod stacks; a protected ALB would block a failed create's rollback.
    assert attrs["deletion_protection.enabled"] == "false"
    listeners = [r["Properties"] for r in item.of_type("AWS::ElasticLoadBalancingV2::Listener").values()]
    if net.certificate_arn:
        https = next(p for p in listeners if p["Protocol"] == "HTTPS")
        assert https["SslPolicy"] == TLS_POLICY
        assert https["Certificates"] == [{"CertificateArn": net.certificate_arn}]
        http = next(p for p in listeners if p["Protocol"] == "HTTP")
        assert http["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    else:
        assert [p["Protocol"] for p in listeners] == ["HTTP"]
    group = item.resources["LoadBalancerSecurityGroup"]["Properties"]
    sources = {json.dumps(r.get("CidrIp") or r.get("CidrIpv6")) for r in group["SecurityGroupIngress"]}
    expected = net.allowed_cidrs or (["0.0.0.0/0"] if net.public else [{"Fn::GetAtt": ["Vpc", "CidrBlock"]}])
    assert sources == {json.dumps(c) for c in expected}
    ports = {r["FromPort"] for r in group["SecurityGroupIngress"]}
    assert ports == ({443, 80} if net.certificate_arn else {80})
    tg = item.one("AWS::ElasticLoadBalancingV2::TargetGroup")
    gpu = item.deployment.spec.compute.service in ("ecs-gpu", "ec2")
    # GPU targets take traffic (and replace the old copy in a deploy) only once the model answers.
    assert tg["HealthCheckPath"] == ("/ready" if gpu else "/health")
    assert tg["Port"] == 8080
    assert tg["TargetType"] == ("instance" if item.deployment.spec.compute.service == "ec2" else "ip")
    delay = int(attributes(tg, "TargetGroupAttributes")["deregistration_delay.timeout_seconds"])
    # Long streams get time to finish; a Spot host has two minutes in all (see test_gpu_targets.py).
    assert delay <= 90 if getattr(item.deployment.spec.compute, "spot", False) else delay >= 120


@pytest.mark.parametrize("stack", stack_names())
def test_workloads_are_private(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    for subnet in item.of_type("AWS::EC2::Subnet").values():
        assert subnet["Properties"].get("MapPublicIpOnLaunch", False) is False
    for service in item.of_type("AWS::ECS::Service").values():
        vpc = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert vpc["AssignPublicIp"] == "DISABLED"
        private = item.deployment.spec.network.private_subnets or [
            {"Ref": "PrivateSubnet1"},
            {"Ref": "PrivateSubnet2"},
        ]
        assert vpc["Subnets"] == private
    workload = item.resources["WorkloadSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in workload  # only the load balancer's rule lets anything in
    (ingress,) = [
        i["Properties"]
        for i in item.of_type("AWS::EC2::SecurityGroupIngress").values()
        if i["Properties"]["GroupId"] == {"Ref": "WorkloadSecurityGroup"}
    ]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"}
    for template in item.of_type("AWS::EC2::LaunchTemplate").values():
        data = template["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert "NetworkInterfaces" not in data


@pytest.mark.parametrize("stack", stack_names())
def test_least_privilege(built: dict[str, Built], stack: str) -> None:
    for role, statement in policies(built[stack]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(not a.endswith("*") for a in actions), (role, actions)
        if statement["Resource"] == "*" and actions == ["kms:Decrypt"]:
            # The key of a secret the spec names is unknown: any key, but only through Secrets Manager
            # and only for those secrets (their ARNs in Secrets Manager's encryption context).
            like = statement["Condition"]["StringLike"]
            assert like["kms:ViaService"] == "secretsmanager.*.amazonaws.com", role
            assert like["kms:EncryptionContext:SecretARN"], role
        elif statement["Resource"] == "*":
            assert set(actions) <= STAR_ALLOWED, (role, actions)
    for role in built[stack].of_type("AWS::IAM::Role").values():
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        if trust["Principal"]["Service"] != "ec2.amazonaws.com":
            assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]


@pytest.mark.parametrize("stack", stack_names())
def test_api_key_secret_is_generated_and_rotated(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    assert '"SecretString"' not in item.text
    spec = item.deployment.spec
    secrets = item.of_type("AWS::SecretsManager::Secret")
    if not spec.auth.api_keys:
        assert secrets == {}
        return
    # The deployment's own key and one per client: each generated, encrypted, rotated by the one function.
    assert set(secrets) == {"ApiKeySecret", *(_client_logical(c.name) for c in spec.auth.clients)}
    schedules = item.of_type("AWS::SecretsManager::RotationSchedule")
    permissions = item.of_type("AWS::Lambda::Permission")
    for name, secret in secrets.items():
        assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
        (rotation,) = [r for r in schedules.values() if r["Properties"]["SecretId"] == {"Ref": name}]
        assert rotation["Properties"]["RotationRules"]["AutomaticallyAfterDays"] == spec.auth.rotation_days
        assert rotation["Properties"]["RotationLambdaARN"] == {"Fn::GetAtt": ["RotationFunction", "Arn"]}
        (permission,) = [p for p in permissions.values() if p["Properties"]["SourceArn"] == {"Ref": name}]
        assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
        assert rotation["DependsOn"] == [k for k, v in permissions.items() if v is permission]
    code = item.resources["RotationFunction"]["Properties"]["Code"]["ZipFile"]
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        assert f'"{step}"' in code
    assert len(code) < 4096  # CloudFormation's limit for inline Lambda code


def _client_logical(name: str) -> str:
    return "Client" + "".join(part.capitalize() for part in name.split("-")) + "Secret"


def _gateway_environments(item: Built) -> list[dict[str, Any]]:
    """Every ECS gateway container's environment, as a name -> value mapping."""
    found = []
    for task in item.of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
            if any(k.startswith("GATEWAY_") for k in env):
                found.append(env)
    return found


@pytest.mark.parametrize("stack", stack_names())
def test_clients_have_their_own_keys_and_limits_in_the_gateway_list(
    built: dict[str, Built], stack: str
) -> None:
    item = built[stack]
    spec = item.deployment.spec
    parameters = item.of_type("AWS::SSM::Parameter")
    if not spec.auth.clients:
        assert parameters == {}
        for env in _gateway_environments(item):
            assert ("GATEWAY_API_KEY_SECRET" in env) == spec.auth.api_keys
            assert "GATEWAY_CLIENTS_PARAMETER" not in env
        return
    ((name, parameter),) = parameters.items()
    props = parameter["Properties"]
    assert props["Name"] == f"/deployctl/{item.deployment.environment}/{spec.name}/clients"
    assert props["Type"] == "String"  # names, secret names and limits: no key is ever in it
    # Advanced cannot go back to Standard: a list that grew past 4 KB and shrank would fail its update.
    # Intelligent-Tiering keeps it standard while it fits and never asks for the downgrade.
    assert props["Tier"] == "Intelligent-Tiering"
    document = json.loads(props["Value"])
    base = f"deployctl/{item.deployment.environment}/{spec.name}"
    expected = [{"name": "deployctl", "secret_arn": f"{base}/api-key"}] + [
        {
            "name": c.name,
            "secret_arn": f"{base}/clients/{c.name}",
            **{k: v for k, v in c.model_dump().items() if k != "name" and v is not None},
        }
        for c in spec.auth.clients
    ]
    assert document == {"clients": expected}
    # Each secret the list names is one this stack creates, under that name, before the list exists.
    secrets = item.of_type("AWS::SecretsManager::Secret")
    assert {e["secret_arn"] for e in expected} == {s["Properties"]["Name"] for s in secrets.values()}
    assert set(parameter["DependsOn"]) == set(secrets)
    # Every gateway reads the list, not a single key, and its role may read the list and every secret.
    envs = _gateway_environments(item)
    if spec.compute.service == "ec2":
        user_data = json.dumps(
            item.resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
        )
        assert "GATEWAY_CLIENTS_PARAMETER" in user_data and "GATEWAY_API_KEY_SECRET" not in user_data
        policies = json.dumps(item.resources["InstanceRole"]["Properties"])
    else:
        assert envs and all(env["GATEWAY_CLIENTS_PARAMETER"] == {"Ref": name} for env in envs)
        assert all("GATEWAY_API_KEY_SECRET" not in env for env in envs)
        policies = json.dumps(item.resources["TaskRole"]["Properties"])
    assert "ssm:GetParameter" in policies and f"parameter{props['Name']}" in policies
    for logical in secrets:
        assert json.dumps({"Ref": logical}) in policies


@pytest.mark.parametrize("stack", stack_names())
def test_observability(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    spec = item.deployment.spec
    groups = item.of_type("AWS::Logs::LogGroup")
    assert groups and all(
        g["Properties"]["RetentionInDays"] == spec.observability.log_retention_days for g in groups.values()
    )
    assert all("KmsKeyId" in g["Properties"] for g in groups.values())
    alarms = set(item.of_type("AWS::CloudWatch::Alarm"))
    assert {"ErrorRateAlarm", "LatencyAlarm", "UnhealthyHostsAlarm"} <= alarms
    gpu = spec.compute.service in ("ecs-gpu", "ec2")
    to_zero = spec.scaling.min == 0 or any(s.min == 0 for s in spec.scaling.schedules)
    assert ("NoHealthyCapacityAlarm" in alarms) == (gpu and not to_zero)
    if "NoHealthyCapacityAlarm" in alarms:
        # A first create loads the model for up to the grace with no healthy target: no page for that.
        capacity = item.resources["NoHealthyCapacityAlarm"]["Properties"]
        grace = MODEL_LOAD_SECONDS[spec.compute.service]
        assert capacity["Period"] * capacity["DatapointsToAlarm"] >= grace + 600
        assert capacity["DatapointsToAlarm"] == capacity["EvaluationPeriods"]
    # Only documented metric math: IF(TS > S, TS, S) and FILL(TS, S); no MAX over [TS, scalar].
    (rate,) = [q for q in item.resources["ErrorRateAlarm"]["Properties"]["Metrics"] if "Expression" in q]
    assert rate["Expression"] == (
        "IF(FILL(requests, 0) > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
    )
    assert "MAX(" not in item.text
    for alarm in item.of_type("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    email = item.of_type("AWS::SNS::Subscription")
    assert bool(email) == bool(spec.observability.alarm_email)
    budget = item.of_type("AWS::Budgets::Budget")
    if spec.budget and spec.budget.monthly_usd:
        (b,) = budget.values()
        data = b["Properties"]["Budget"]
        assert data["BudgetLimit"] == {"Amount": spec.budget.monthly_usd, "Unit": "USD"}
        assert data["CostFilters"] == {"TagKeyValue": [f"user:deployctl:stack${stack}"]}
        # Notifications are create-only: a fixed name would make their change a refused replacement.
        assert "BudgetName" not in data
    else:
        assert budget == {}
    if spec.compute.service != "ec2":
        cluster = item.one("AWS::ECS::Cluster")
        value = "enabled" if spec.observability.container_insights else "disabled"
        assert cluster["ClusterSettings"] == [{"Name": "containerInsights", "Value": value}]


@pytest.mark.parametrize("stack", stack_names())
def test_network_matches_the_spec(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    net = item.deployment.spec.network
    if net.vpc != "new":
        assert item.of_type("AWS::EC2::VPC") == {}
        assert item.resources["WorkloadSecurityGroup"]["Properties"]["VpcId"] == net.vpc
        return
    assert len(item.of_type("AWS::EC2::Subnet")) == 4
    assert len(item.of_type("AWS::EC2::NatGateway")) == net.nat_gateways
    assert len(item.of_type("AWS::EC2::FlowLog")) == 1
    interface = [e for e in endpoints(item).values() if e["VpcEndpointType"] == "Interface"]
    assert bool(interface) == net.vpc_endpoints


def endpoints(item: Built) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in item.of_type("AWS::EC2::VPCEndpoint").items()}


@pytest.mark.parametrize("stack", stack_names())
def test_subnets_are_derived_from_the_vpc_range(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    net = item.deployment.spec.network
    if net.vpc != "new":
        return
    vpc_range = ipaddress.ip_network(net.vpc_cidr)
    assert item.one("AWS::EC2::VPC")["CidrBlock"] == net.vpc_cidr
    subnets = [
        ipaddress.ip_network(s["Properties"]["CidrBlock"]) for s in item.of_type("AWS::EC2::Subnet").values()
    ]
    assert all(s.subnet_of(vpc_range) for s in subnets)
    assert all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    # The load balancer needs /27 subnets with 8 free addresses; the spec's bound keeps them /26 or larger.
    assert all(s.prefixlen <= 26 for s in subnets)


@pytest.mark.parametrize("stack", stack_names())
def test_s3_gateway_endpoint_in_every_vpc_we_own(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    gateways = [e for e in endpoints(item).values() if e["VpcEndpointType"] == "Gateway"]
    if item.deployment.spec.network.vpc != "new":
        assert gateways == []  # we do not know (nor own) an existing VPC's route tables
        return
    (s3,) = gateways
    assert s3["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}
    assert s3["RouteTableIds"] == [{"Ref": "PrivateRouteTable1"}, {"Ref": "PrivateRouteTable2"}]
    assert "PolicyDocument" not in s3  # the default policy lets ECR's layer bucket through


@pytest.mark.parametrize("stack", stack_names())
def test_private_dns_endpoints_only_where_we_own_the_vpc_or_are_told(
    built: dict[str, Built], stack: str
) -> None:
    item = built[stack]
    net = item.deployment.spec.network
    interface = [e for e in endpoints(item).values() if e["VpcEndpointType"] == "Interface"]
    allowed = net.vpc_endpoints and (net.vpc == "new" or net.endpoint_private_dns is True)
    assert bool(interface) == allowed
    assert all(e["PrivateDnsEnabled"] is True for e in interface)
    # In a VPC we do not own, each private-DNS endpoint carries the spec's consent (for project rules).
    for name, resource in item.of_type("AWS::EC2::VPCEndpoint").items():
        if resource["Properties"]["VpcEndpointType"] == "Interface":
            marker = resource.get("Metadata", {}).get("deployctl", {}).get("endpoint_private_dns")
            assert marker == (None if net.vpc == "new" else PRIVATE_DNS_ASKED), name


# ------------------------------------------------------------------ per target


def _container(item: Built) -> dict[str, Any]:
    (container,) = item.one("AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_fargate_gateway(built: dict[str, Built]) -> None:
    item = built["prod-fargate-public"]
    task = item.one("AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
    assert (task["Cpu"], task["Memory"], task["EphemeralStorage"]) == ("8192", "16384", {"SizeInGiB": 40})
    container = _container(item)
    assert container["ReadonlyRootFilesystem"] is True
    assert container["Secrets"] == [{"Name": "GATEWAY_PROVIDER_KEY", "ValueFrom": "team/openai"}]
    execution = item.resources["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    read = next(s for s in execution if s["Action"] == ["secretsmanager:GetSecretValue"])
    assert read["Resource"]["Fn::Sub"].endswith(":secret:team/openai-??????")  # IAM only
    env = _env(container)
    assert env["GATEWAY_UPSTREAM"] == "external"
    assert env["GATEWAY_UPSTREAM_URL"] == "https://api.openai.com/v1"
    assert (env["GATEWAY_SERVED_MODEL"], env["GATEWAY_UPSTREAM_MODEL"]) == ("vision", "gpt-4o")
    assert env["GATEWAY_UPSTREAM_TIMEOUT"] == str(IDLE_TIMEOUT_SECONDS)
    assert env["GATEWAY_CLIENTS_PARAMETER"] == {"Ref": "ClientsParameter"}  # the spec names clients
    assert "GatewayImageTag" in item.template["Parameters"]
    service = item.one("AWS::ECS::Service")
    assert service["LaunchType"] == "FARGATE"
    assert "DesiredCount" not in service  # the scaler owns it
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    configs = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in item.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    # Predefined metrics by type; the gateway's own gauge (tests/templates/test_scaling_signals.py) by name.
    policies = {
        c["PredefinedMetricSpecification"]["PredefinedMetricType"]
        if "PredefinedMetricSpecification" in c
        else c["CustomizedMetricSpecification"]["MetricName"]: c
        for c in configs
    }
    assert set(policies) == {
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageMemoryUtilization",
        "ALBRequestCountPerTarget",
        "RequestsInFlight",
    }
    assert policies["ALBRequestCountPerTarget"]["TargetValue"] == 1000
    assert all(p["ScaleInCooldown"] == 60 and p["ScaleOutCooldown"] == 60 for p in policies.values())
    target = item.one("AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 10)


def test_fargate_x86_and_fixed_size(built: dict[str, Built]) -> None:
    item = built["staging-fargate-x86-existing-vpc"]
    assert item.one("AWS::ECS::TaskDefinition")["RuntimePlatform"]["CpuArchitecture"] == "X86_64"
    assert item.one("AWS::ECS::Service")["DesiredCount"] == 1
    assert item.of_type("AWS::ApplicationAutoScaling::ScalableTarget") == {}


def test_ecs_gpu(built: dict[str, Built]) -> None:
    item = built["prod-gpu-public"]
    data = item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    # compute.ami_id pins the image: a literal, so a new AMI is a template change the plan shows.
    assert data["ImageId"] == "ami-0123456789abcdef0"
    assert "GpuAmiId" not in item.template["Parameters"]
    # Unpinned, the launch template follows the SSM parameter CloudFormation resolves on each update.
    unpinned = built["staging-gpu-spot-s3"]
    assert unpinned.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["ImageId"] == {"Ref": "GpuAmiId"}
    assert unpinned.template["Parameters"]["GpuAmiId"]["Default"].endswith("/gpu/recommended/image_id")
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"] == {
        "DeleteOnTermination": True,
        "Encrypted": True,
        "VolumeSize": 200,
        "VolumeType": "gp3",
    }
    container = _container(item)
    assert container["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    env = _env(container)
    assert env["ENGINE_MODEL"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert json.loads(env["ENGINE_ARGS"]) == {"max_model_len": 8192, "tensor_parallel_size": 1}
    assert env["GATEWAY_UPSTREAM_URL"] == "http://127.0.0.1:8000/v1"
    service = item.one("AWS::ECS::Service")
    assert service["HealthCheckGracePeriodSeconds"] >= 900
    assert service["CapacityProviderStrategy"][0]["CapacityProvider"] == {"Ref": "CapacityProvider"}
    provider = item.one("AWS::ECS::CapacityProvider")["AutoScalingGroupProvider"]
    assert provider["ManagedScaling"]["Status"] == "ENABLED"
    assert provider["ManagedTerminationProtection"] == "ENABLED"
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    assert group["NewInstancesProtectedFromScaleIn"] is True
    assert "MixedInstancesPolicy" not in group
    assert "VllmImageTag" in item.template["Parameters"]


def test_ecs_gpu_spot_s3_and_schedules(built: dict[str, Built]) -> None:
    item = built["staging-gpu-spot-s3"]
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    distribution = group["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == 0
    assert group["CapacityRebalance"] is True
    assert group["MaxSize"] == "3"  # scaling ceiling 2, plus one instance for deploys
    container = _container(item)
    assert container["ResourceRequirements"] == [{"Type": "GPU", "Value": "4"}]
    # All four GPUs the task reserves, not vLLM's default of one.
    assert json.loads(_env(container)["ENGINE_ARGS"]) == {
        "load_format": "runai_streamer",
        "tensor_parallel_size": 4,
    }
    reads = [s for _, s in policies(item) if "s3:GetObject" in s["Action"]]
    assert reads[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-models/llama-3.1-8b/*"}
    target = item.one("AWS::ApplicationAutoScaling::ScalableTarget")
    actions = {a["ScheduledActionName"]: a for a in target["ScheduledActions"]}
    assert actions["night"]["Schedule"] == "cron(0 19 ? * MON-FRI *)"
    assert actions["night"]["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 0}
    assert len(item.of_type("AWS::EC2::VPCEndpoint")) == 8  # S3, 4 common, 3 for the ECS agent
    bucket_policy = item.one("AWS::S3::BucketPolicy")["PolicyDocument"]["Statement"][0]
    assert bucket_policy["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_sagemaker(built: dict[str, Built]) -> None:
    item = built["prod-sagemaker-multi"]
    variant = item.one("AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.p4d.24xlarge"
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] >= 1800
    assert variant["ModelDataDownloadTimeoutInSeconds"] >= 1800
    endpoint = item.one("AWS::SageMaker::Endpoint")
    # The instance type is in the name: a new type replaces the autoscaled endpoint instead of failing
    # its update (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html).
    assert endpoint["EndpointName"] == "prod-sagemaker-multi-p4d-24xlarge"
    model_env = item.one("AWS::SageMaker::Model")["PrimaryContainer"]["Environment"]
    assert model_env["GATEWAY_SAGEMAKER_CONTRACT"] == "true"
    assert model_env["HF_TOKEN_SECRET"] == "hf/token"
    targets = item.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    endpoint_target = targets["EndpointScalableTarget"]["Properties"]
    assert endpoint_target["ResourceId"] == "endpoint/prod-sagemaker-multi-p4d-24xlarge/variant/AllTraffic"
    assert endpoint_target["ScheduledActions"][0]["Schedule"] == "cron(0 22 ? * * *)"
    invocations = item.resources["EndpointInvocationsPerInstancePolicy"]["Properties"]
    metric = invocations["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    # The gateway in front holds the keys and calls the endpoint with its role, and nothing else.
    gateway = _env(_container(item))
    assert gateway["GATEWAY_UPSTREAM"] == "sagemaker"
    task_role = item.resources["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    invoke = next(s for s in task_role if "sagemaker:InvokeEndpoint" in s["Action"])
    # DescribeEndpoint: the gateway's readiness check, which answers 503 until the endpoint is InService.
    assert invoke["Action"] == [
        "sagemaker:DescribeEndpoint",
        "sagemaker:InvokeEndpoint",
        "sagemaker:InvokeEndpointWithResponseStream",
    ]
    assert invoke["Resource"]["Fn::Sub"].endswith(":endpoint/prod-sagemaker-multi-p4d-24xlarge")
    assert gateway["GATEWAY_SAGEMAKER_ENDPOINT"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    output = item.template["Outputs"]["SageMakerEndpointName"]["Value"]
    assert output == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    assert targets["ServiceScalableTarget"]["Properties"]["MinCapacity"] == 2
    assert gateway["GATEWAY_UPSTREAM_TIMEOUT"] == str(UPSTREAM_READ_TIMEOUT_SECONDS)
    assert UPSTREAM_READ_TIMEOUT_SECONDS > 60  # AWS: 60 s to answer, a 70 s socket timeout advised
    # An autoscaled variant keeps its instance count when a new endpoint config (a new image) arrives.
    assert endpoint["RetainAllVariantProperties"] is True
    # No VPC for the model: CloudFormation does not wait for SageMaker's network interfaces before it
    # deletes the subnets and security groups, so the stack could not be deleted.
    assert "VpcConfig" not in item.one("AWS::SageMaker::Model")


@pytest.mark.parametrize("stack", ["prod-sagemaker-multi", "staging-sagemaker-small"])
def test_sagemaker_endpoint_logs_are_the_stacks(built: dict[str, Built], stack: str) -> None:
    """SageMaker would make /aws/sagemaker/Endpoints/<name> itself: unencrypted, kept forever, left
    behind by a delete. The stack makes it first, with the spec's retention and the deployment's key."""
    item = built[stack]
    endpoint = item.resources["Endpoint"]
    name = endpoint["Properties"]["EndpointName"]
    group = item.resources["EndpointLogGroup"]
    assert group["Properties"]["LogGroupName"] == f"/aws/sagemaker/Endpoints/{name}"
    assert group["Properties"]["RetentionInDays"] == item.deployment.spec.observability.log_retention_days
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    assert group["DeletionPolicy"] == "Delete"
    assert "EndpointLogGroup" in endpoint["DependsOn"]
    statements = [s for r, s in policies(item) if r == "ModelRole"]
    actions = {a for s in statements for a in s["Action"]}
    assert "logs:CreateLogGroup" not in actions
    (writer,) = [s for s in statements if "logs:PutLogEvents" in s["Action"]]
    assert writer["Resource"][0] == {"Fn::GetAtt": ["EndpointLogGroup", "Arn"]}
    # The key policy lets CloudWatch Logs use the key for every log group of the account.
    key_policy = item.resources["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = [s for s in key_policy if s["Sid"] == "LogsEncryptThisAccountsLogGroups"]
    scope = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"]
    assert scope.endswith(":log-group:*")


def test_endpoint_names_fit_and_change_with_the_instance_type() -> None:
    longest = "x" * 50
    for kind in ("ml.g5.xlarge", "ml.p4de.24xlarge", "ml.g6e.48xlarge"):
        name = endpoint_name(longest, kind)
        assert len(name) <= ENDPOINT_NAME_MAX and name.endswith(instance_type_label(kind))
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name), name  # CreateEndpoint's pattern
    assert endpoint_name(longest, "ml.g5.xlarge") != endpoint_name(longest + "y", "ml.g5.xlarge")
    assert endpoint_name("prod-chat", "ml.g5.2xlarge") == "prod-chat-g5-2xlarge"
    assert endpoint_name("prod-chat", "ml.g5.2xlarge") != endpoint_name("prod-chat", "ml.g5.12xlarge")


@pytest.mark.parametrize("stack", stack_names())
def test_secrets_the_spec_names_are_decrypted_through_secrets_manager(
    built: dict[str, Built], stack: str
) -> None:
    """A secret the spec names may use a customer-managed key; whoever reads it needs kms:Decrypt, only
    through Secrets Manager and only for that secret (its ARN in the encryption context)."""
    item = built[stack]
    spec = item.deployment.spec
    named = {
        "ecs-fargate": ("ExecutionRole", getattr(spec.engine, "provider_key_secret", None)),
        "sagemaker": ("ModelRole", spec.model.token_secret),
        # ECS injects the token (the execution role); an ec2 host reads it itself (the instance role).
        "ecs-gpu": ("ExecutionRole", spec.model.token_secret),
        "ec2": ("InstanceRole", spec.model.token_secret),
    }[spec.compute.service]
    role, secret = named
    if secret is None:
        return
    arn = secret_arn_by_name(secret)
    statements = [s for r, s in policies(item) if r == role]
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert any(arn == s["Resource"] or arn in s["Resource"] for s in reads), (role, secret)
    (decrypt,) = [s for s in statements if s["Action"] == ["kms:Decrypt"] and s["Resource"] == "*"]
    assert decrypt["Condition"]["StringLike"] == {
        "kms:ViaService": "secretsmanager.*.amazonaws.com",
        "kms:EncryptionContext:SecretARN": [arn],
    }


def test_ec2(built: dict[str, Built]) -> None:
    item = built["dev-ec2-spot-schedules"]
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    assert group["HealthCheckType"] == "ELB"
    assert group["HealthCheckGracePeriod"] >= 900
    assert group["TargetGroupARNs"] == [{"Ref": "TargetGroup"}]
    assert "MixedInstancesPolicy" in group
    user_data = json.dumps(item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"])
    assert "docker run" in user_data and "--gpus all" in user_data
    assert "${Image}" in user_data and "VllmImageTag" in user_data
    schedules = {
        r["Properties"]["Recurrence"]: r["Properties"]
        for r in item.of_type("AWS::AutoScaling::ScheduledAction").values()
    }
    assert schedules["0 20 * * MON-FRI"]["MaxSize"] == 0
    assert schedules["0 7 * * 1-5"]["MinSize"] == 1  # AWS days 2-6 are Unix 1-5
    assert schedules["0 7 * * 1-5"]["MaxSize"] == 4  # max 3, plus the instance a rolling update adds
    kinds = {
        p["Properties"]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for p in item.of_type("AWS::AutoScaling::ScalingPolicy").values()
    }
    assert kinds == {"ALBRequestCountPerTarget"}  # host CPU does not follow a GPU server's load
    update = item.resources["InstanceGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert update["MaxBatchSize"] == 1


def test_ec2_token_is_read_at_boot_not_written_in_the_template(built: dict[str, Built]) -> None:
    item = built["dev-ec2-open-http"]
    user_data = json.dumps(item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"])
    assert "aws_call secret 'hf/token'" in user_data
    assert "GATEWAY_API_KEY_SECRET" not in user_data  # api_keys: false
    assert "--env GATEWAY_ALLOW_ANONYMOUS='true'" in user_data


# ------------------------------------------------------------------ create, replace, delete


NAME_PROPERTIES = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::Route53::RecordSet": "Name",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "PolicyName",
}


@pytest.mark.parametrize("stack", stack_names())
def test_nothing_named_outlives_a_failed_create(built: dict[str, Built], stack: str) -> None:
    """A fixed-name resource retained after a failed create makes every later create fail on its name."""
    item = built[stack]
    for name, resource in item.resources.items():
        deletion = resource.get("DeletionPolicy", "Delete")
        assert deletion in ("Delete", "RetainExceptOnCreate") or name == "AccessLogBucket", name
        assert resource.get("UpdateReplacePolicy", "Delete") in ("Delete", "Retain"), name
        if deletion == "RetainExceptOnCreate":
            assert resource["UpdateReplacePolicy"] == "Retain", name
    # The access-log bucket has no fixed name; Retain, because the ALB writes a test object into it at
    # once and a rollback could not delete a bucket that is not empty.
    bucket = item.resources["AccessLogBucket"]
    assert bucket["DeletionPolicy"] == "Retain" and "BucketName" not in bucket["Properties"]


@pytest.mark.parametrize("stack", stack_names())
def test_kept_names_are_new_for_each_stack(built: dict[str, Built], stack: str) -> None:
    """What outlives a prod stack carries the stack's UUID, so the deployment can be created again."""
    item = built[stack]
    prod = item.deployment.environment == "prod"
    for name, group in item.of_type("AWS::Logs::LogGroup").items():
        if name == "EndpointLogGroup":  # SageMaker's fixed name: deleted with the endpoint it belongs to
            assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Delete"
            continue
        assert group["DeletionPolicy"] == ("RetainExceptOnCreate" if prod else "Delete"), name
        parts = group["Properties"]["LogGroupName"]["Fn::Join"][1]
        assert parts[0] == f"/deployctl/{item.deployment.environment}/{item.deployment.spec.name}/"
        assert parts[1] == {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    for kind, prop in NAME_PROPERTIES.items():
        for name, resource in item.of_type(kind).items():
            assert resource.get("DeletionPolicy", "Delete") != "Retain", (name, prop)


@pytest.mark.parametrize("stack", stack_names())
def test_rotation_runs_on_any_account(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    if not item.deployment.spec.auth.api_keys:
        return
    function = item.resources["RotationFunction"]["Properties"]
    # Lambda refuses a reservation that leaves under 100 unreserved; new accounts have 10 in all.
    assert "ReservedConcurrentExecutions" not in function
    assert "VpcConfig" not in function


@pytest.mark.parametrize("stack", stack_names())
def test_secrets_reach_ecs_by_name_or_full_arn(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    spec = item.deployment.spec
    named = {getattr(spec.engine, "provider_key_secret", None), spec.model.token_secret} - {None}
    for task in item.of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            for secret in container.get("Secrets", []):
                value = secret["ValueFrom"]
                assert isinstance(value, str) and "?" not in value and "*" not in value
                assert value in named
    for _, statement in policies(item):
        for resource in (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        ):
            text = resource if isinstance(resource, str) else json.dumps(resource)
            for secret in named:
                if secret.startswith("arn:") and secret in text:
                    assert resource == secret  # a full ARN is the resource itself, no wildcard


def _gateway_environments(item: Built) -> list[dict[str, Any]]:
    found = []
    for task in item.of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            if container["Name"] == "gateway":
                found.append(_env(container))
    return found


@pytest.mark.parametrize("stack", stack_names())
def test_every_gateway_outlasts_the_load_balancer_idle_timeout(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    idle = int(
        attributes(item.one("AWS::ElasticLoadBalancingV2::LoadBalancer"))["idle_timeout.timeout_seconds"]
    )
    if item.deployment.spec.compute.service == "ec2":
        user_data = json.dumps(item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"])
        assert f"--env GATEWAY_KEEP_ALIVE_TIMEOUT='{idle + 5}'" in user_data
        assert "--env GATEWAY_METRICS_STACK=" in user_data and "AWS::StackName" in user_data
        return
    (env,) = _gateway_environments(item)
    assert env["GATEWAY_KEEP_ALIVE_TIMEOUT"] == str(idle + 5)
    assert env["GATEWAY_METRICS_STACK"] == {"Ref": "AWS::StackName"}


@pytest.mark.parametrize("stack", stack_names())
def test_the_endpoint_url_is_the_name_on_the_certificate(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    net = item.deployment.spec.network
    url = item.template["Outputs"]["EndpointUrl"]["Value"]
    records = item.of_type("AWS::Route53::RecordSet")
    if net.certificate_arn:
        assert url == f"https://{net.domain_name}"
        # What plan and deploy ask ACM about (tooling/certificates.py) is read from this very template.
        assert certificates.expected(item.template) == (net.certificate_arn, net.domain_name)
    else:
        assert url == {"Fn::Sub": ["http://${Dns}", {"Dns": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}}]}
        assert certificates.expected(item.template) is None
    if net.hosted_zone_id:
        (record,) = records.values()
        props = record["Properties"]
        assert (props["Name"], props["Type"], props["HostedZoneId"]) == (
            net.domain_name,
            "A",
            net.hosted_zone_id,
        )
        assert props["AliasTarget"] == {
            "DNSName": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]},
            "HostedZoneId": {"Fn::GetAtt": ["LoadBalancer", "CanonicalHostedZoneID"]},
            "EvaluateTargetHealth": False,
        }
        # No AAAA: the load balancer is IPv4-only, and an AAAA alias to it would answer nothing.
        assert item.one("AWS::ElasticLoadBalancingV2::LoadBalancer").get("IpAddressType", "ipv4") == "ipv4"
    else:
        assert records == {}


def test_a_sagemaker_gateway_without_nat_reaches_both_sagemaker_apis(built: dict[str, Built]) -> None:
    item = built["staging-sagemaker-small"]
    services = {json.dumps(e["ServiceName"]) for e in endpoints(item).values()}
    # DescribeEndpoint (readiness) is the SageMaker API's; InvokeEndpoint the runtime's.
    for service in ("sagemaker.api", "sagemaker.runtime"):
        assert json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}." + service}) in services
