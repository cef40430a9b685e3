"""Every stack of the matrix has a dashboard, and every metric on it is one the stack publishes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from templates import dashboard, gateway_metrics
from templates.context import Stack
from tests.templates.conftest import Built, stack_names
from tooling import cost
from tooling.cfn_rules._dashboard import Body, Source, flatten

GPU_METRICS = {
    "sagemaker": {
        ("/aws/sagemaker/Endpoints", "GPUUtilization"),
        ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization"),
    },
    "ecs-gpu": {("AWS/ECS", "GPUReservation")},
    "ec2": set(),
    "ecs-fargate": set(),
}
# What each Ref/GetAtt a dimension names must be, by dimension.
DIMENSION_TYPES = {
    "LoadBalancer": ("AWS::ElasticLoadBalancingV2::LoadBalancer", "LoadBalancerFullName"),
    "TargetGroup": ("AWS::ElasticLoadBalancingV2::TargetGroup", "TargetGroupFullName"),
    "ClusterName": ("AWS::ECS::Cluster", ""),
    "ServiceName": ("AWS::ECS::Service", "Name"),
    "AutoScalingGroupName": ("AWS::AutoScaling::AutoScalingGroup", ""),
    "EndpointName": ("AWS::SageMaker::Endpoint", "EndpointName"),
}


def _body(item: Built) -> Body:
    (props,) = [r["Properties"] for r in item.resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    text, variables = flatten(props["DashboardBody"]) or ("", {})
    marked = re.sub(r"\$\{(?!!)([^}]*)\}", lambda m: "\ue000" + m.group(1) + "\ue001", text)
    return Body("Dashboard", [], marked, variables, json.loads(marked))


def _titles(body: Body) -> str:
    return " | ".join(
        w["properties"].get("title", w["properties"].get("markdown", "")) for w in body.widgets()
    )


@pytest.mark.parametrize("name", stack_names())
def test_every_stack_has_a_dashboard_of_metrics_it_publishes(built: dict[str, Built], name: str) -> None:
    item = built[name]
    spec = item.deployment.spec
    body = _body(item)
    rows = list(body.metrics())
    assert rows, name
    gateway_names = {
        *gateway_metrics.USAGE_METRICS,
        *gateway_metrics.GAUGES,
        gateway_metrics.TIME_TO_FIRST_TOKEN,
    }
    for row in rows:
        if row.namespace == gateway_metrics.NAMESPACE:
            assert row.name in gateway_names, row
            assert row.dimensions == {"Stack": Source("pseudo", "AWS::StackName")}, row
            continue
        for dimension, value in row.dimensions.items():
            if dimension == "VariantName":
                assert value == "AllTraffic"
                continue
            kind, attribute = DIMENSION_TYPES[dimension]
            assert isinstance(value, Source), (row, dimension)
            assert item.resources[value.name]["Type"] == kind, (row, dimension)
            assert value.attribute == attribute, (row, dimension)
        if row.namespace == "ECS/ContainerInsights":
            assert spec.observability.container_insights
    for _, properties in body.metric_widgets():
        assert body.source(properties["region"]) == Source("pseudo", "AWS::Region")

    # What the issue asks for, on every target.
    pairs = {(r.namespace, r.name, r.options.get("stat")) for r in rows}
    for stat in ("p50", "p99"):
        assert (gateway_metrics.NAMESPACE, gateway_metrics.TIME_TO_FIRST_TOKEN, stat) in pairs
    assert (gateway_metrics.NAMESPACE, gateway_metrics.REQUESTS_IN_FLIGHT, "Average") in pairs
    assert {f"HTTPCode_Target_{c}XX_Count" for c in "2345"} <= {r.name for r in rows}
    assert (gateway_metrics.NAMESPACE, gateway_metrics.ERRORS, "Sum") in pairs
    assert ("AWS/ApplicationELB", "HealthyHostCount", "Minimum") in pairs
    service = spec.compute.service
    assert {(r.namespace, r.name) for r in rows} & set().union(*GPU_METRICS.values()) == GPU_METRICS[service]
    engine = {gateway_metrics.ENGINE_REQUESTS_WAITING, gateway_metrics.ENGINE_KV_CACHE_USAGE}
    assert (engine <= {r.name for r in rows}) == (service in dashboard.ENGINE_TARGETS)
    titles = _titles(body)
    if service in ("ec2", "ecs-gpu"):
        assert "no GPU utilisation: the hosts run no CloudWatch agent" in titles
        assert ("AWS/AutoScaling", "GroupInServiceInstances", "Average") in pairs
    if service == "ecs-fargate":
        assert "no GPU: the model runs at the external provider" in titles
    if service == "sagemaker":
        assert "SageMaker publishes no instance count" in titles
    # The stack's own alarms, each by its ARN, on the first row.
    (panel,) = [w for w in body.widgets() if w["type"] == "alarm"]
    shown = {body.source(a) for a in panel["properties"]["alarms"]}
    alarms = {k for k, r in item.resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert shown == {Source("getatt", name, "Arn") for name in alarms} and alarms, name
    assert panel["y"] == 0
    expressions = [
        p["expression"]
        for _, w in body.metric_widgets()
        for m in w["metrics"]
        for p in m
        if isinstance(p, dict) and "expression" in p
    ]
    assert "completion / PERIOD(completion)" in expressions


@pytest.mark.parametrize("name", stack_names())
def test_the_dashboard_shows_the_plans_estimate_a_day(built: dict[str, Built], name: str) -> None:
    item = built[name]
    spec = item.deployment.spec
    estimate = cost.estimate(spec, item.deployment.environment)
    day = 24 / cost.hours_per_month()
    text = _titles(_body(item))
    assert f"**{cost.format_usd(estimate.monthly_min_usd * day, cents=True)} a day** at scaling.min" in text
    assert f"{cost.format_usd(estimate.monthly_max_usd * day, cents=True)} a day at the most" in text
    assert ("a day on the schedules" in text) == bool(spec.scaling.schedules)
    # Fallback instance types price differently: the day between the cheapest and the dearest type.
    low, high = (cost.format_usd(v * day, cents=True) for v in estimate.range("min"))
    if len(getattr(spec.compute, "instance_types", None) or []) > 1:
        assert f"{low} to {high} by instance type" in text, name
    else:
        assert "by instance type" not in text, name
    assert cost.prices_note() in text


@pytest.mark.parametrize("name", stack_names())
def test_the_dashboard_is_named_for_its_stack_and_region_and_its_url_is_an_output(
    built: dict[str, Built], name: str
) -> None:
    item = built[name]
    (resource,) = [r for r in item.resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert resource["Properties"]["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}
    url: Any = item.template["Outputs"][dashboard.OUTPUT]["Value"]["Fn::Sub"]
    assert url[0] == (
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
        "#dashboards/dashboard/${Dashboard}"
    )
    assert url[1] == {"Dashboard": {"Ref": "Dashboard"}}
    # Tagged like everything else, so cost allocation and ownership see it.
    tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
    assert tags["deployctl:stack"] == name


def test_text_with_a_dollar_brace_stays_text_and_the_variables_stay_variables(
    built: dict[str, Built], monkeypatch: pytest.MonkeyPatch
) -> None:
    item = built["dev-fargate-minimal"]
    stack = Stack(item.deployment.spec, item.deployment.environment)
    monkeypatch.setattr(dashboard, "_header", lambda _: "run ${HOME}/deploy.sh")
    text = dashboard.body(stack, dashboard.Sources({}))
    assert "run ${!HOME}/deploy.sh" in text  # Fn::Sub writes ${! as a literal ${
    assert '"region":"${AWS::Region}"' in text
    assert '"Stack","${AWS::StackName}"' in text
    assert "\\u0001" not in text and "\\u0002" not in text
