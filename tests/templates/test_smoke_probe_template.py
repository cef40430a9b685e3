"""The smoke probe in every rendered stack of the matrix and the examples (templates/smoke_probe.py).

Internal load balancers get the probe, public ones do not; where it is, it sits in the load balancer's
subnets with a security group that meets the load balancer's on the listener ports, runs the inline
copy of templates/runtime/smoke_probe.py, and its role can do nothing but its network interfaces and
its own logs.
"""

from __future__ import annotations

from typing import Any

import pytest

from templates import smoke_probe
from templates.runtime import smoke_probe as checks
from tests.templates.conftest import Built, stack_names

PROBE_RESOURCES = {
    "SmokeProbeFunction",
    "SmokeProbeRole",
    "SmokeProbeSecurityGroup",
    "SmokeProbeLogGroup",
}


def _probe(item: Built) -> dict[str, Any]:
    return item.resources[smoke_probe.FUNCTION]["Properties"]


@pytest.mark.parametrize("stack", stack_names())
def test_a_probe_exactly_where_the_load_balancer_is_internal(built: dict[str, Built], stack: str) -> None:
    item = built[stack]
    internal = item.one("AWS::ElasticLoadBalancingV2::LoadBalancer")["Scheme"] == "internal"
    assert internal == (not item.deployment.spec.network.public)
    present = PROBE_RESOURCES & set(item.resources)
    assert present == (PROBE_RESOURCES if internal else set())
    outputs = item.template["Outputs"]
    if internal:
        assert outputs[smoke_probe.OUTPUT]["Value"] == {"Ref": smoke_probe.FUNCTION}
    else:
        assert smoke_probe.OUTPUT not in outputs
        assert not any(name.startswith("LoadBalancerIngressFromSmokeProbe") for name in item.resources)


def _internal(built: dict[str, Built], stack: str) -> Built:
    item = built[stack]
    if item.deployment.spec.network.public:
        pytest.skip("a public load balancer has no probe (test_a_probe_exactly_where_...)")
    return item


@pytest.mark.parametrize("stack", stack_names())
def test_the_probe_reaches_the_load_balancer_from_its_subnets(built: dict[str, Built], stack: str) -> None:
    item = _internal(built, stack)
    probe = _probe(item)
    alb = item.one("AWS::ElasticLoadBalancingV2::LoadBalancer")
    private = item.deployment.spec.network.private_subnets or [
        {"Ref": "PrivateSubnet1"},
        {"Ref": "PrivateSubnet2"},
    ]
    assert probe["VpcConfig"]["SubnetIds"] == alb["Subnets"] == private
    assert probe["VpcConfig"]["SecurityGroupIds"] == [{"Ref": "SmokeProbeSecurityGroup"}]
    ports = [443, 80] if item.deployment.spec.network.certificate_arn else [80]
    group = item.resources["SmokeProbeSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group  # nothing calls the probe over the network
    assert [
        (r["FromPort"], r["ToPort"], r["DestinationSecurityGroupId"]) for r in group["SecurityGroupEgress"]
    ] == [(p, p, {"Ref": "LoadBalancerSecurityGroup"}) for p in ports]
    assert group["VpcId"] == item.resources["LoadBalancerSecurityGroup"]["Properties"]["VpcId"]
    ingress = {
        name: r["Properties"]
        for name, r in item.of_type("AWS::EC2::SecurityGroupIngress").items()
        if r["Properties"]["SourceSecurityGroupId"] == {"Ref": "SmokeProbeSecurityGroup"}
    }
    assert sorted((i["GroupId"]["Ref"], i["FromPort"], i["ToPort"]) for i in ingress.values()) == sorted(
        ("LoadBalancerSecurityGroup", p, p) for p in ports
    )
    listeners = sorted(
        r["Properties"]["Port"] for r in item.of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    )
    assert listeners == sorted(ports)


@pytest.mark.parametrize("stack", stack_names())
def test_the_probe_function_runs_the_shared_checks_with_its_own_logs(
    built: dict[str, Built], stack: str
) -> None:
    item = _internal(built, stack)
    probe = _probe(item)
    assert probe["Runtime"] == "python3.13" and probe["Handler"] == "index.handler"
    assert probe["Timeout"] == smoke_probe.PROBE_TIMEOUT_SECONDS <= 900
    assert probe["Timeout"] >= len(checks.CHECKS) * checks.REQUEST_TIMEOUT_SECONDS + checks.MARGIN_SECONDS
    assert probe["MemorySize"] == 128
    assert "ReservedConcurrentExecutions" not in probe  # E9005
    assert probe["Environment"] == {"Variables": {checks.TIMEOUT_VARIABLE: "120"}}
    code = probe["Code"]["ZipFile"]
    assert code == smoke_probe.inline_source()
    namespace: dict[str, Any] = {}
    exec(compile(code, "index.py", "exec"), namespace)  # our own handler, loaded as Lambda loads it
    assert callable(namespace["handler"]) and namespace["CHECKS"] == checks.CHECKS
    logs = item.resources["SmokeProbeLogGroup"]["Properties"]
    assert probe["LoggingConfig"] == {"LogGroup": {"Ref": "SmokeProbeLogGroup"}}
    assert logs["RetentionInDays"] == item.deployment.spec.observability.log_retention_days
    assert logs["KmsKeyId"]
    tags = {t["Key"]: t["Value"] for t in probe["Tags"]}
    assert tags[smoke_probe.ROLE_TAG] == smoke_probe.ROLE_TAG_VALUE
    assert tags["deployctl:stack"] == stack


@pytest.mark.parametrize("stack", stack_names())
def test_the_probe_role_manages_its_interfaces_and_writes_its_logs_only(
    built: dict[str, Built], stack: str
) -> None:
    item = _internal(built, stack)
    role = item.resources["SmokeProbeRole"]["Properties"]
    assert _probe(item)["Role"] == {"Fn::GetAtt": ["SmokeProbeRole", "Arn"]}
    assert (
        "ManagedPolicyArns" not in role
    )  # not AWSLambdaVPCAccessExecutionRole: it adds logs:CreateLogGroup on *
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    (policy,) = role["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (list(smoke_probe.VPC_ACTIONS), "*"),
        (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [
                {"Fn::GetAtt": ["SmokeProbeLogGroup", "Arn"]},
                {"Fn::Sub": ["${Arn}:*", {"Arn": {"Fn::GetAtt": ["SmokeProbeLogGroup", "Arn"]}}]},
            ],
        ),
    ]
    # No secret anywhere in the probe: the key arrives in each invocation's payload.
    assert "secretsmanager" not in str(role) and "ApiKeySecret" not in str(_probe(item))
