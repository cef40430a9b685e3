"""The runtime contracts of the two GPU-host targets, asserted on every rendered ecs-gpu and ec2 stack.

Each test names the AWS behaviour it guards; see templates/targets/ecs_gpu.py, ec2.py and gpu_hosts.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from templates.targets.ec2 import READY_URL, ROLLING_SUSPEND
from tests.templates.conftest import Built
from tools.local_aws import deletion_order

# EC2 takes at most 16 KB of user data before base64 (EC2 User Guide, "Instance user data").
USER_DATA_LIMIT = 16 * 1024


def gpu_stacks() -> list[str]:
    from tests.templates.matrix import MATRIX

    names = {f"{env}-{name}": body for env, specs in MATRIX.items() for name, (_, body) in specs.items()}
    matrix = [n for n, body in names.items() if "service: ecs-gpu" in body or "service: ec2" in body]
    return [*matrix, "prod-llama-3-1-8b", "dev-mistral-7b"]


def ecs_gpu_stacks() -> list[str]:
    return [n for n in gpu_stacks() if "ec2" not in n and n != "dev-mistral-7b"]


def ec2_stacks() -> list[str]:
    return [n for n in gpu_stacks() if n not in ecs_gpu_stacks()]


def user_data(item: Built) -> tuple[str, dict[str, Any]]:
    sub = item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    return (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])


def test_the_gpu_stack_lists_cover_both_targets(built: dict[str, Built]) -> None:
    assert {built[n].deployment.spec.compute.service for n in ecs_gpu_stacks()} == {"ecs-gpu"}
    assert {built[n].deployment.spec.compute.service for n in ec2_stacks()} == {"ec2"}
    assert len(ecs_gpu_stacks()) >= 3 and len(ec2_stacks()) >= 3


# ------------------------------------------------------------------ both targets


@pytest.mark.parametrize("stack", gpu_stacks())
def test_the_group_has_room_for_one_more_instance_than_scaling_asks_for(
    built: dict[str, Built], stack: str
) -> None:
    """One GPU task or container fills an instance: a deploy that starts before it stops needs +1."""
    item = built[stack]
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    spec = item.deployment.spec
    ceiling = max([spec.scaling.max, *(s.max for s in spec.scaling.schedules)])
    assert int(group["MaxSize"]) == ceiling + 1
    assert int(group["MinSize"]) <= ceiling
    assert "DesiredCapacity" not in group  # scaling owns it; an update must not reset it


@pytest.mark.parametrize("stack", gpu_stacks())
def test_imds_v2_only_and_hop_limit_matches_where_the_workload_runs(
    built: dict[str, Built], stack: str
) -> None:
    """IMDSv2 answers a PUT whose hop limit reaches the caller: Docker's bridge network is one hop more."""
    item = built[stack]
    options = item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["MetadataOptions"]
    assert options["HttpTokens"] == "required"
    assert options["HttpEndpoint"] == "enabled"
    if item.deployment.spec.compute.service == "ec2":
        assert options["HttpPutResponseHopLimit"] == 2
    else:
        # awsvpc tasks get credentials from the ECS agent, and ECS_AWSVPC_BLOCK_IMDS keeps them off IMDS.
        assert options["HttpPutResponseHopLimit"] == 1
        assert "ECS_AWSVPC_BLOCK_IMDS=true" in user_data(item)[0]


# ------------------------------------------------------------------ ecs-gpu


@pytest.mark.parametrize("stack", ecs_gpu_stacks())
def test_ecs_gpu_deploys_never_wait_for_a_host_that_cannot_come(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    service = item.one("AWS::ECS::Service")
    config = service["DeploymentConfiguration"]
    assert config["DeploymentCircuitBreaker"]["Rollback"] is True
    assert config["MinimumHealthyPercent"] == 100
    # With one task at 100 %, only MaximumPercent 200 lets the new task start next to the old one.
    assert config["MaximumPercent"] == 200
    container = item.one("AWS::ECS::TaskDefinition")["ContainerDefinitions"][0]
    gpus = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}["GPU"]
    assert int(gpus) == item.deployment.spec.compute.gpu.gpus  # one task per instance
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    targets = item.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    most_tasks = (
        max(
            [t["Properties"]["MaxCapacity"] for t in targets.values()]
            + [a["ScalableTargetAction"]["MaxCapacity"] for t in targets.values()
               for a in t["Properties"].get("ScheduledActions", [])]
        )
        if targets
        else service["DesiredCount"]
    )  # fmt: skip
    assert int(group["MaxSize"]) > most_tasks
    provider = item.one("AWS::ECS::CapacityProvider")["AutoScalingGroupProvider"]
    # Managed scaling may reach MaxSize: nothing else caps it below the deploy's extra instance.
    assert provider["ManagedScaling"]["Status"] == "ENABLED"
    assert provider["ManagedScaling"]["TargetCapacity"] == 100


@pytest.mark.parametrize("stack", ecs_gpu_stacks())
def test_ecs_gpu_termination_protection_comes_with_its_teardown(built: dict[str, Built], stack: str) -> None:
    """Managed termination protection needs protected instances; then only a force delete removes them."""
    item = built[stack]
    provider = item.one("AWS::ECS::CapacityProvider")["AutoScalingGroupProvider"]
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    assert provider["ManagedTerminationProtection"] == "ENABLED"
    assert group["NewInstancesProtectedFromScaleIn"] is True
    cleanup = item.resources["HostCleanup"]
    assert cleanup["Type"] == "Custom::HostCleanup"
    assert cleanup["Properties"]["AutoScalingGroupName"] == {"Ref": "InstanceGroup"}
    assert cleanup["Properties"]["Cluster"] == {"Ref": "Cluster"}
    assert cleanup["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["HostCleanupFunction", "Arn"]}
    function = item.resources["HostCleanupFunction"]["Properties"]
    assert "VpcConfig" not in function  # it must work while the stack's VPC is being deleted
    assert function["Timeout"] == 900
    assert cleanup["Properties"]["ServiceTimeout"] > function["Timeout"]
    code = function["Code"]["ZipFile"]
    assert "ForceDelete=True" in code and "def handler(event, context" in code
    statements = item.resources["HostCleanupRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {a: s["Resource"] for s in statements for a in s["Action"]}
    assert "autoScalingGroupName/${Group}" in actions["autoscaling:DeleteAutoScalingGroup"]["Fn::Sub"][0]
    assert actions["ecs:DeregisterContainerInstance"] == {"Fn::GetAtt": ["Cluster", "Arn"]}


@pytest.mark.parametrize("stack", ecs_gpu_stacks())
def test_ecs_gpu_deletes_in_an_order_that_cannot_hang(built: dict[str, Built], stack: str) -> None:
    """CloudFormation deletes each resource before those it depends on (DependsOn, Ref, GetAtt, Sub)."""
    order = deletion_order(built[stack].resources)
    position = {name: i for i, name in enumerate(order)}
    chain = [
        "Service",  # its tasks stop first
        "CapacityProviderAssociation",
        "CapacityProvider",  # ECS stops managing the group
        "HostCleanup",  # group force-deleted, stray container instances deregistered
        "InstanceGroup",  # already gone: CloudFormation moves on
        "LaunchTemplate",
        "Cluster",  # no container instances are left to block it
    ]
    assert [position[n] for n in chain] == sorted(position[n] for n in chain), order
    # The cleanup's own function and role outlive it.
    assert position["HostCleanup"] < position["HostCleanupFunction"] < position["HostCleanupRole"]
    # On create the same edges put the association before the service: no task starts without capacity.
    assert "CapacityProviderAssociation" in built[stack].resources["Service"]["DependsOn"]


def test_the_deletion_order_of_the_old_template_put_the_group_after_ecs_let_go_and_hung() -> None:
    """The order alone is not enough: without the cleanup the group is deleted with protected instances."""
    user_data = {"Fn::Sub": ["${Cluster}", {"Cluster": {"Ref": "Cluster"}}]}
    resources = {
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "LaunchTemplate": {"Properties": {"UserData": user_data}},
        "InstanceGroup": {"Properties": {"LaunchTemplate": {"Ref": "LaunchTemplate"}}},
        "CapacityProvider": {"Properties": {"AutoScalingGroupArn": {"Ref": "InstanceGroup"}}},
        "CapacityProviderAssociation": {"Properties": {"Cluster": {"Ref": "Cluster"},
                                                       "CapacityProviders": [{"Ref": "CapacityProvider"}]}},
        "Service": {"DependsOn": ["CapacityProviderAssociation"],
                    "Properties": {"Cluster": {"Ref": "Cluster"}}},
    }  # fmt: skip
    order = deletion_order(resources)
    assert order.index("CapacityProvider") < order.index("InstanceGroup")  # ECS gone, protection stays
    resources["Loop"] = {"DependsOn": ["Service"], "Properties": {"X": {"Ref": "Loop2"}}}
    resources["Loop2"] = {"DependsOn": ["Loop"]}
    with pytest.raises(ValueError, match="circular"):
        deletion_order(resources)


# ------------------------------------------------------------------ ec2


@pytest.mark.parametrize("stack", ec2_stacks())
def test_ec2_waits_for_each_instance_to_be_ready_and_rolls_back_without(
    built: dict[str, Built], stack: str
) -> None:
    item = built[stack]
    spec = item.deployment.spec
    resource = item.resources["InstanceGroup"]
    group = resource["Properties"]
    rolling = resource["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["WaitOnResourceSignals"] is True
    assert rolling["MinSuccessfulInstancesPercent"] == 100  # one bad instance stops the update
    assert rolling["MaxBatchSize"] == 1
    assert rolling["MinInstancesInService"] == spec.scaling.min
    assert rolling["MinInstancesInService"] < int(group["MaxSize"])  # AWS requires it
    assert sorted(rolling["SuspendProcesses"]) == sorted(ROLLING_SUSPEND)
    for process in ("Launch", "Terminate", "AddToLoadBalancer"):
        assert process not in rolling["SuspendProcesses"]  # the update itself needs them
    pause = _seconds(rolling["PauseTime"])
    assert pause <= 3600  # CloudFormation's ceiling
    assert pause >= group["HealthCheckGracePeriod"]  # no timeout while the model is still loading
    if spec.scaling.min > 0:
        signal = resource["CreationPolicy"]["ResourceSignal"]
        assert signal["Count"] == spec.scaling.min
        assert _seconds(signal["Timeout"]) >= group["HealthCheckGracePeriod"]
    else:
        assert "CreationPolicy" not in resource  # no instance would ever signal
    if spec.scaling.schedules:
        assert resource["UpdatePolicy"]["AutoScalingScheduledAction"] == {
            "IgnoreUnmodifiedGroupSizeProperties": True
        }
    for action in item.of_type("AWS::AutoScaling::ScheduledAction").values():
        # A schedule sets MaxSize too: it keeps the same headroom, or turns the group off.
        size = action["Properties"]
        assert size["MaxSize"] == 0 or size["MaxSize"] > max(
            size["MinSize"], rolling["MinInstancesInService"]
        )
    statements = item.resources["InstanceRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    signal_statement = next(s for s in statements if "cloudformation:SignalResource" in s["Action"])
    assert signal_statement["Action"] == ["cloudformation:SignalResource"]
    assert signal_statement["Resource"] == {"Ref": "AWS::StackId"}


@pytest.mark.parametrize("stack", ec2_stacks())
def test_ec2_user_data_needs_nothing_the_ami_lacks(built: dict[str, Built], stack: str) -> None:
    """The ECS GPU AMI has bash, Docker, curl-minimal and python3 (cloud-init); no AWS CLI, no cfn-signal."""
    text, variables = user_data(built[stack])
    assert len(text.encode()) < USER_DATA_LIMIT
    shell, helper = (
        text.split("<<'BOOT_AWS'\n", 1)[0],
        text.split("<<'BOOT_AWS'\n", 1)[1].split("BOOT_AWS\n")[0],
    )
    text = shell + text.split("\nBOOT_AWS\n", 1)[1]
    assert "import boto3" not in helper and "subprocess" not in helper  # standard library only
    commands = [line.strip() for line in text.splitlines()]
    assert not any(re.match(r"(.*[|;&] *)?aws ", c) for c in commands)  # the CLI is not on the AMI
    assert "cfn-signal" not in text
    assert "set -e" not in text  # a failed step signals FAILURE instead of dying silently
    assert variables["ReadyUrl"] == READY_URL == "http://127.0.0.1:8080/ready"
    assert text.index("aws_call ready") < text.index("aws_call signal SUCCESS")
    assert "retry 30 aws_call reachable" in text  # waits for the NAT route / endpoints


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", duration)
    assert match, duration
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _engine_args(item: Built) -> dict[str, Any]:
    import json

    if "AWS::ECS::TaskDefinition" in {r["Type"] for r in item.resources.values()}:
        (container,) = item.one("AWS::ECS::TaskDefinition")["ContainerDefinitions"]
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        return json.loads(env["ENGINE_ARGS"])
    text, _ = user_data(item)
    (flag,) = re.findall(r"--env ENGINE_ARGS='([^']*)'", text)
    return json.loads(flag)


@pytest.mark.parametrize("stack", gpu_stacks())
def test_vllm_shards_over_every_gpu_the_instance_gives_it(built: dict[str, Built], stack: str) -> None:
    """ECS reserves all of the instance's GPUs for the task and docker runs with --gpus all; vLLM uses
    tensor_parallel_size GPUs (1 by default), so it is set to the instance's GPU count."""
    item = built[stack]
    args = _engine_args(item)
    gpus = item.deployment.spec.compute.gpu.gpus
    assert args["tensor_parallel_size"] == gpus
    if "AWS::ECS::TaskDefinition" in {r["Type"] for r in item.resources.values()}:
        (container,) = item.one("AWS::ECS::TaskDefinition")["ContainerDefinitions"]
        assert container["ResourceRequirements"] == [{"Type": "GPU", "Value": str(gpus)}]


@pytest.mark.parametrize("stack", gpu_stacks())
def test_spot_targets_drain_within_the_interruption_notice(built: dict[str, Built], stack: str) -> None:
    """A Spot instance has two minutes after its interruption notice: the target group must let go of
    it, and the container stop, inside them. On-demand hosts keep the longer drain for long streams."""
    item = built[stack]
    attributes = {
        a["Key"]: a["Value"]
        for a in item.one("AWS::ElasticLoadBalancingV2::TargetGroup")["TargetGroupAttributes"]
    }
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    if item.deployment.spec.compute.spot:
        assert delay <= 90
    else:
        assert delay == 300


@pytest.mark.parametrize("stack", ecs_gpu_stacks())
def test_a_bad_gpu_deploy_rolls_back_after_two_failed_tasks(built: dict[str, Built], stack: str) -> None:
    """The circuit breaker's default threshold is max(3, half the desired count) failed tasks, each one
    an instance, an image pull and a model-load grace period: GPU services roll back after two."""
    breaker = built[stack].one("AWS::ECS::Service")["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {
        "Enable": True,
        "Rollback": True,
        "ThresholdConfiguration": {"Type": "COUNT", "Value": 2},
    }


def test_ec2_without_nat_signals_through_cloudformations_endpoint(tmp_path: Any) -> None:
    """With nat_gateways 0 the instances' SignalResource only reaches CloudFormation through its
    interface endpoint; without it (as before) E9017 finds that every create would time out."""
    import json
    from pathlib import Path

    from tooling import lint, repository
    from tooling.render import render_deployment

    spec = tmp_path / "deployments" / "dev" / "ec2-no-nat.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        "name: ec2-no-nat\nowner: team@example.com\nregion: us-east-1\n"
        "model: {id: 's3://my-models/llama-3.1-8b/'}\nengine: {type: vllm}\n"
        "compute: {service: ec2, instance_type: g6.xlarge}\n"
        "network: {nat_gateways: 0, vpc_endpoints: true}\n",
        encoding="utf-8",
    )
    result = repository.load(tmp_path)
    assert result.errors == [], result.errors
    (deployment,) = result.valid
    template = json.loads(render_deployment(deployment).text)
    endpoint = template["Resources"]["CloudformationEndpoint"]["Properties"]
    assert endpoint["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.cloudformation"}
    assert endpoint["PrivateDnsEnabled"] is True
    assert not any(r.get("NatGatewayId") for r in _properties(template, "AWS::EC2::Route"))

    def e9017(body: dict[str, Any]) -> list[str]:
        found = lint.lint(json.dumps(body), "us-east-1", Path("t.json"), project_only=True)
        return [f.message for f in found if f.code == "E9017"]

    assert e9017(template) == []
    del template["Resources"]["CloudformationEndpoint"]
    assert e9017(template), "the rule must catch the template without the endpoint"


def _properties(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


# ------------------------------------------------------------------ fallback types and the Spot base


def test_the_matrix_has_fallback_groups_on_both_targets(built: dict[str, Built]) -> None:
    fallbacks = {
        built[n].deployment.spec.compute.service
        for n in gpu_stacks()
        if len(built[n].deployment.spec.compute.types) > 1
    }
    assert fallbacks == {"ecs-gpu", "ec2"}


@pytest.mark.parametrize("stack", gpu_stacks())
def test_the_group_launches_the_specs_types_in_its_order(built: dict[str, Built], stack: str) -> None:
    """One on-demand type: the launch template alone, as before fallbacks existed (no change to those
    stacks). Otherwise a mixed instances policy: overrides in the spec's order with `prioritized`
    on-demand allocation (the order is the priority), the Spot share above OnDemandBaseCapacity with
    price-capacity-optimized, and no Spot request in the launch template, which Auto Scaling refuses
    under a mixed instances policy."""
    item = built[stack]
    compute = item.deployment.spec.compute
    group = item.one("AWS::AutoScaling::AutoScalingGroup")
    data = item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["InstanceType"] == compute.types[0]
    assert "InstanceMarketOptions" not in data
    if not compute.spot and len(compute.types) == 1:
        assert "MixedInstancesPolicy" not in group
        assert group["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "LaunchTemplate"}
        return
    assert "LaunchTemplate" not in group
    policy = group["MixedInstancesPolicy"]
    assert policy["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateId"] == {
        "Ref": "LaunchTemplate"
    }
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == list(compute.types)
    assert all(set(o) == {"InstanceType"} for o in policy["LaunchTemplate"]["Overrides"])  # no weights
    distribution = policy["InstancesDistribution"]
    if compute.spot:
        assert distribution["OnDemandBaseCapacity"] == compute.on_demand_base
        assert distribution["OnDemandPercentageAboveBaseCapacity"] == 0
        assert distribution["SpotAllocationStrategy"] == "price-capacity-optimized"
        assert group["CapacityRebalance"] is True
    else:
        assert distribution["OnDemandBaseCapacity"] == 0
        assert distribution["OnDemandPercentageAboveBaseCapacity"] == 100
        assert "SpotAllocationStrategy" not in distribution and "CapacityRebalance" not in group
    if len(compute.types) > 1:
        assert distribution["OnDemandAllocationStrategy"] == "prioritized"
    else:
        # A single Spot type keeps the policy it always had, so its stack does not change.
        assert set(distribution) == {
            "OnDemandBaseCapacity",
            "OnDemandPercentageAboveBaseCapacity",
            "SpotAllocationStrategy",
        }


@pytest.mark.parametrize("stack", ecs_gpu_stacks())
def test_the_ecs_task_fits_the_smallest_type_of_the_group(built: dict[str, Built], stack: str) -> None:
    """ECS places a task only where its memory fits: sized to a larger fallback, it would stay pending
    on the smaller type while managed scaling kept the instance running."""
    item = built[stack]
    fleet = item.deployment.spec.compute.fleet
    memory = int(item.one("AWS::ECS::TaskDefinition")["Memory"])
    smallest = min(i.memory_gib for i in fleet) * 1024
    assert memory <= smallest * 0.9
    assert memory > smallest * 0.9 - 256  # and no smaller than the rounding to 256 MiB needs


def test_a_fallback_spec_renders_what_its_single_type_twin_does_but_the_placement(
    built: dict[str, Built],
) -> None:
    """The types change only where instances come from and the task's size, nothing else."""
    import copy

    from templates.stack import build

    fleet = built["staging-gpu-fallback-spot"]
    spec = fleet.deployment.spec
    twin = spec.model_copy(
        update={
            "compute": spec.compute.model_copy(
                update={
                    "instance_types": None,
                    "instance_type": "g6.xlarge",
                    "spot": False,
                    "on_demand_base": 0,
                }
            )
        }
    )
    ours = copy.deepcopy(fleet.resources)
    theirs = build(twin, "staging").to_dict()["Resources"]
    for resources in (ours, theirs):
        group = resources["InstanceGroup"]["Properties"]
        for key in ("MixedInstancesPolicy", "LaunchTemplate", "CapacityRebalance"):
            group.pop(key, None)
        resources.pop("TargetGroup")  # Spot drains faster
        resources.pop("Dashboard")  # its estimate is the fleet's (tests/templates/test_dashboard.py)
    assert ours == theirs


def test_one_spot_type_above_an_on_demand_base() -> None:
    """The base alone needs no allocation strategy for on-demand (one type has no order)."""
    from troposphere import autoscaling

    from templates.gpu_hosts import placement
    from tests.cost import make_spec

    spec = make_spec(
        compute={"service": "ec2", "instance_type": "g6.xlarge", "spot": True, "on_demand_base": 2}
    )
    template = autoscaling.LaunchTemplateSpecification(LaunchTemplateId="lt-0123456789abcdef0", Version="1")
    found = placement(spec.compute, template)
    policy = found["MixedInstancesPolicy"].to_dict()
    assert policy["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 2,
        "OnDemandPercentageAboveBaseCapacity": 0,
        "SpotAllocationStrategy": "price-capacity-optimized",
    }
    assert policy["LaunchTemplate"]["Overrides"] == [{"InstanceType": "g6.xlarge"}]
    assert found["CapacityRebalance"] is True
