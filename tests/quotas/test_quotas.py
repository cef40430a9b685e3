"""The quota preflight (issue #16): what deployments need at their ceiling, compared with what the
account's quotas hold, and the reads of Service Quotas, CloudWatch, EC2 and SageMaker.

moto does not model Service Quotas usage (no applied values, no UsageMetric, nothing published in
AWS/Usage), so the reads are tested here with botocore's Stubber fed the responses AWS documents:
GetServiceQuota / GetAWSDefaultServiceQuota
(https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html, the
example of `aws service-quotas get-service-quota --service-code ec2`), ListServiceQuotas
(https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html),
GetMetricData (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html),
DescribeInstances, ListEndpoints, DescribeEndpoint and DescribeEndpointConfig.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from templates.stack import build, render
from templates.targets.sagemaker import endpoint_name
from tooling import quotas
from tooling.plan import Plan, StackPlan
from tooling.plan_output import markdown
from tooling.repository import load
from tooling.spec import Deployment

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
REGION = "us-east-1"
G_ON_DEMAND = quotas.EC2_QUOTAS[("G", False)]
G_SPOT = quotas.EC2_QUOTAS[("G", True)]
P_ON_DEMAND = quotas.EC2_QUOTAS[("P", False)]


def example(name: str) -> Deployment:
    (found,) = [f for f in load(ROOT).valid if f.stack_name == name]
    assert found.spec is not None
    return found.spec


def variant(base: str, **changes: Any) -> Deployment:
    """An example with `compute`/`scaling` fields changed, validated as a user's file would be."""
    data = example(base).model_dump(mode="json", exclude_none=True)
    for section, values in changes.items():
        data[section] = {**data[section], **values} if section == "scaling" else values
    return Deployment.model_validate(data)


# --------------------------------------------------------------------------------------------- needs


def test_gpu_groups_need_vcpus_of_their_class_at_the_ceiling_plus_the_deploy_headroom() -> None:
    # prod-llama-3-1-8b: ecs-gpu, g5.xlarge (4 vCPUs), On-Demand, max 4; a rolling deploy adds one.
    (need,) = quotas.needs("prod-llama-3-1-8b", example("prod-llama-3-1-8b"))
    assert (need.quota, need.amount, need.region) == (G_ON_DEMAND, 20, "us-east-1")
    assert need.detail == "5 × g5.xlarge (4 vCPUs)"
    # dev-mistral-7b: ec2, g6.xlarge on Spot, max 2 and schedules up to 2.
    (spot,) = quotas.needs("dev-mistral-7b", example("dev-mistral-7b"))
    assert (spot.quota, spot.amount) == (G_SPOT, 12)


@pytest.mark.parametrize("stack", ["prod-llama-3-1-8b", "dev-mistral-7b"])
def test_a_gpu_groups_need_is_the_instance_group_maxsize_of_its_template(stack: str) -> None:
    # The need and the template agree on the most instances the group may launch.
    spec = example(stack)
    resources = json.loads(render(build(spec, stack.split("-", 1)[0])))["Resources"]
    (group,) = [r for r in resources.values() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    (need,) = quotas.needs(stack, spec)
    assert need.amount == int(group["Properties"]["MaxSize"]) * spec.compute.gpu.vcpus


def test_a_schedule_above_scaling_max_sets_the_ceiling() -> None:
    spec = variant(
        "prod-llama-3-1-8b",
        scaling={"schedules": [{"name": "peak", "cron": "0 8 ? * MON-FRI *", "min": 2, "max": 9}]},
    )
    (need,) = quotas.needs("prod-x", spec)
    assert need.amount == (9 + 1) * 4


def test_p_instances_draw_on_the_p_quota() -> None:
    spec = variant(
        "prod-llama-3-1-8b",
        compute={"service": "ecs-gpu", "instance_type": "p5.48xlarge", "spot": False},
        scaling={"min": 1, "max": 2},
    )
    (need,) = quotas.needs("prod-x", spec)
    assert (need.quota, need.amount) == (P_ON_DEMAND, 3 * 192)


def test_a_fallback_fleet_needs_its_largest_type_split_at_its_on_demand_base() -> None:
    # g6.xlarge (4 vCPUs) then g5.2xlarge (8 vCPUs): any may launch, so the quota must hold the larger;
    # one instance on-demand, the rest of max 3 + 1 headroom on Spot.
    spec = variant(
        "prod-llama-3-1-8b",
        compute={"service": "ecs-gpu", "instance_types": ["g6.xlarge", "g5.2xlarge"], "spot": True,
                 "on_demand_base": 1},
        scaling={"min": 1, "max": 3},
    )  # fmt: skip
    on_demand, spot = quotas.needs("prod-x", spec)
    assert (on_demand.quota, on_demand.amount) == (G_ON_DEMAND, 1 * 8)
    assert (spot.quota, spot.amount) == (G_SPOT, 3 * 8)


def test_sagemaker_needs_instances_of_its_type_and_fargate_needs_none() -> None:
    (need,) = quotas.needs("staging-qwen2-5-vl-7b", example("staging-qwen2-5-vl-7b"))
    spec = example("staging-qwen2-5-vl-7b")
    assert need.quota == quotas.Quota("sagemaker", f"{spec.compute.instance_type} for endpoint usage",
                                      unit="instances")  # fmt: skip
    assert need.amount == quotas.ceiling(spec) and need.blue_green
    assert quotas.needs("prod-multimodal-api", example("prod-multimodal-api")) == []


def test_instance_classes() -> None:
    assert [quotas.instance_class(t) for t in ("g4dn.xlarge", "vt1.3xlarge", "ml.g5.2xlarge", "p4d.24xlarge",
                                               "m5.large")] == ["G", "G", "G", "P", None]  # fmt: skip


# ---------------------------------------------------------------------------------------- comparison


def need(stack: str, amount: int, quota: quotas.Quota = G_ON_DEMAND, **kw: Any) -> quotas.Need:
    return quotas.Need(stack, REGION, quota, amount, f"{amount} of it", **kw)


def test_an_update_is_not_counted_twice() -> None:
    # 16 vCPUs run now, 8 of them the plan's own stack: at its ceiling of 20 the account holds 28.
    reading = quotas.Reading(value=32, code="L-DB2E81BA", name=G_ON_DEMAND.name, usage=16, own={"prod-a": 8})
    (check,) = quotas.compare([need("prod-a", 20)], {(REGION, G_ON_DEMAND): reading})
    assert (check.after, check.exceeded) == (28, False)
    reading.value = 24
    (check,) = quotas.compare([need("prod-a", 20)], {(REGION, G_ON_DEMAND): reading})
    assert check.exceeded
    assert check.message() == (
        "us-east-1: Running On-Demand G and VT instances (L-DB2E81BA) is 24 vCPUs; the plan needs 20 at "
        "maximum scale (prod-a: 20 of it = 20) on top of 8 vCPUs in use by others: 28 in all, 4 over. "
        "Request more: https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA"
    )


def test_needs_of_several_stacks_add_up_per_region_and_quota() -> None:
    other = quotas.Need("prod-c", "eu-west-1", G_ON_DEMAND, 8, "x")
    readings = {
        (REGION, G_ON_DEMAND): quotas.Reading(value=30, usage=0),
        ("eu-west-1", G_ON_DEMAND): quotas.Reading(value=30, usage=0),
    }
    checks = quotas.compare([need("prod-a", 20), need("prod-b", 12), other], readings)
    assert [(c.region, c.needed, c.exceeded) for c in checks] == [("eu-west-1", 8, False), (REGION, 32, True)]


def test_an_unread_quota_is_unknown_never_passed_and_unread_usage_still_catches_the_obvious() -> None:
    (check,) = quotas.compare([need("prod-a", 20)], {})
    assert check.value is None and not check.exceeded
    assert (
        "(L-DB2E81BA) was not read; the plan needs 20" in check.message()
        and "usage unknown" in check.message()
    )
    (check,) = quotas.compare([need("prod-a", 20)], {(REGION, G_ON_DEMAND): quotas.Reading(value=8)})
    assert check.exceeded and check.after == 20


def test_a_sagemaker_update_counts_the_new_fleet_beside_the_old() -> None:
    quota = quotas.sagemaker_quota("ml.g5.xlarge")
    reading = quotas.Reading(value=6, code="L-0123ABCD", usage=3, own={"prod-s": 3})
    (check,) = quotas.compare([need("prod-s", 2, quota, blue_green=True)], {(REGION, quota): reading})
    assert check.needed == 6 and not check.exceeded
    assert "doubled while the update's new fleet starts" in check.stacks[0]
    reading.value = 5
    (check,) = quotas.compare([need("prod-s", 2, quota, blue_green=True)], {(REGION, quota): reading})
    assert check.exceeded
    assert check.link.endswith("/services/sagemaker/quotas/L-0123ABCD")
    # A deploy does not know whether the endpoint changes: the second fleet is a warning, not a refusal.
    reading.value = 4
    (check,) = quotas.compare([need("prod-s", 2, quota, blue_green=None)], {(REGION, quota): reading})
    assert (check.needed, check.during_update, check.exceeded, check.tight_during_update) == (
        2,
        4,
        False,
        True,
    )
    report = quotas.Report(True, [check])
    assert [level for level, _ in report.lines()] == ["info", "warning"]
    assert "4 more while it runs, 6 in all" in report.lines()[1][1]
    # Unchanged in a plan: nothing doubles.
    (check,) = quotas.compare([need("prod-s", 2, quota, blue_green=False)], {(REGION, quota): reading})
    assert (check.needed, check.during_update, check.tight_during_update) == (2, 0, False)


def test_report_json_and_text() -> None:
    report = quotas.Report(True, quotas.compare([need("prod-a", 20)], {(REGION, G_ON_DEMAND): quotas.Reading(
        value=8, code="L-DB2E81BA", usage=0)}), ["us-east-1: something not read"])  # fmt: skip
    data = report.to_json()
    assert data["exceeded"] == 1 and data["warnings"] == ["us-east-1: something not read"]
    (entry,) = data["quotas"]
    assert (entry["code"], entry["value"], entry["needed"], entry["after"], entry["exceeded"]) == (
        "L-DB2E81BA",
        8,
        20,
        20,
        True,
    )
    assert [level for level, _ in report.lines()] == ["error", "warning"]
    offline = quotas.Report.not_checked(quotas.OFFLINE_NOTE)
    assert offline.lines() == [("info", f"quotas were not checked: {quotas.OFFLINE_NOTE}")]


def test_a_plan_over_a_quota_fails_and_its_comment_keeps_the_quota_line() -> None:
    stacks = [StackPlan("prod", f"s{i}", f"prod-s{i}", "update", region=REGION) for i in range(40)]
    report = quotas.Report(True, quotas.compare([need("prod-s1", 20)], {(REGION, G_ON_DEMAND): quotas.Reading(
        value=8, code="L-DB2E81BA", usage=0)}))  # fmt: skip
    plan = Plan("aws", stacks, quotas=report)
    assert plan.failed
    comment = markdown(plan, limit=1500)
    assert ":no_entry:" in comment and "L-DB2E81BA" in comment
    link = "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-DB2E81BA"
    assert f" · [request more]({link})" in comment
    assert plan.to_json()["quotas"]["exceeded"] == 1
    assert not Plan("aws", stacks, quotas=quotas.Report.not_checked("x")).failed


# ------------------------------------------------------------------------------------------- reading


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")
    return client, Stubber(client)


class Clients:
    """A client factory of Stubbers: asking for a client none was made for fails the test."""

    def __init__(self, *services: str) -> None:
        self.made = {s: stubbed(s) for s in services}

    def __call__(self, service: str, region: str) -> Any:
        assert region == REGION, region
        return self.made[service][0]

    def stub(self, service: str) -> Stubber:
        return self.made[service][1]

    @property
    def stubs(self) -> Iterator[Stubber]:
        return (s for _, s in self.made.values())


def ec2_quota(code: str, name: str, value: float, cls: str) -> dict:
    """GetServiceQuota's Quota, as the Service Quotas API reference and CLI example show it."""
    return {
        "ServiceCode": "ec2",
        "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": f"arn:aws:servicequotas:{REGION}:123456789012:ec2/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
        "UsageMetric": {
            "MetricNamespace": "AWS/Usage",
            "MetricName": "ResourceCount",
            "MetricDimensions": {"Class": cls, "Resource": "vCPU", "Service": "EC2", "Type": "Resource"},
            "MetricStatisticRecommendation": "Maximum",
        },
    }


def metric_query(cls: str) -> dict:
    return {
        "MetricDataQueries": [
            {
                "Id": "usage",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Usage",
                        "MetricName": "ResourceCount",
                        "Dimensions": [
                            {"Name": "Class", "Value": cls},
                            {"Name": "Resource", "Value": "vCPU"},
                            {"Name": "Service", "Value": "EC2"},
                            {"Name": "Type", "Value": "Resource"},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
                "ReturnData": True,
            }
        ],
        "StartTime": NOW - quotas.METRIC_WINDOW,
        "EndTime": NOW,
        "ScanBy": "TimestampDescending",
    }


def metric_values(*values: float) -> dict:
    return {
        "MetricDataResults": [
            {"Id": "usage", "Label": "ResourceCount", "StatusCode": "Complete", "Values": list(values),
             "Timestamps": [NOW - dt.timedelta(minutes=i + 1) for i in range(len(values))]}
        ],
        "Messages": [],
    }  # fmt: skip


def instance(instance_type: str, stack: str | None = None, *, spot: bool = False, n: int = 0) -> dict:
    data: dict[str, Any] = {
        "InstanceId": f"i-{n:017x}",
        "InstanceType": instance_type,
        "State": {"Code": 16, "Name": "running"},
        "CpuOptions": {"CoreCount": 2, "ThreadsPerCore": 2},
        "Tags": [{"Key": "deployctl:stack", "Value": stack}] if stack else [],
    }
    if spot:
        data["InstanceLifecycle"] = "spot"
    return data


RUNNING = {"Filters": [{"Name": "instance-state-name", "Values": ["pending", "running"]}]}


def test_ec2_quota_usage_metric_and_own_instances_are_read() -> None:
    clients = Clients("service-quotas", "cloudwatch", "ec2")
    clients.stub("ec2").add_response("describe_instances", {"Reservations": [{"Instances": [
        instance("g5.xlarge", "prod-a", n=1),
        instance("g5.xlarge", "prod-a", n=2),
        instance("g6.xlarge", "someone-else", n=3),
        instance("g6.xlarge", "dev-b", spot=True, n=4),
        instance("m5.large", n=5),
    ]}]}, RUNNING)  # fmt: skip
    clients.stub("service-quotas").add_response(
        "get_service_quota",
        {"Quota": ec2_quota("L-DB2E81BA", "Running On-Demand G and VT instances", 32.0, "G/OnDemand")},
        {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"},
    )
    clients.stub("cloudwatch").add_response(
        "get_metric_data", metric_values(12.0, 8.0), metric_query("G/OnDemand")
    )
    for stub in clients.stubs:
        stub.activate()
    report = quotas.preflight([("prod-a", example("prod-llama-3-1-8b"), True)], clients, now=NOW)
    for stub in clients.stubs:
        stub.assert_no_pending_responses()
    (check,) = report.checks
    # The newest datapoint (12) is usage; prod-a's own two g5.xlarge (8 vCPUs) are not counted twice.
    assert (check.value, check.usage, check.own, check.needed, check.after) == (32, 12, 8, 20, 24)
    assert not check.exceeded and report.warnings == []


def test_without_usage_datapoints_running_instances_are_counted_and_the_default_applies() -> None:
    clients = Clients("service-quotas", "cloudwatch", "ec2")
    clients.stub("ec2").add_response("describe_instances", {"Reservations": [{"Instances": [
        instance("g6.xlarge", "other", spot=True, n=1),
        instance("g6.xlarge", "dev-mistral-7b", spot=True, n=2),
        instance("g5.xlarge", "other", n=3),
    ]}]}, RUNNING)  # fmt: skip
    # No applied value for the Spot quota: GetServiceQuota says so, and the AWS default is the quota.
    clients.stub("service-quotas").add_client_error(
        "get_service_quota", "NoSuchResourceException", "The request failed because the specified service "
        "quota does not exist.", expected_params={"ServiceCode": "ec2", "QuotaCode": "L-3819A6DF"}
    )  # fmt: skip
    clients.stub("service-quotas").add_response(
        "get_aws_default_service_quota",
        {"Quota": ec2_quota("L-3819A6DF", "All G and VT Spot Instance Requests", 8.0, "G/Spot")},
        {"ServiceCode": "ec2", "QuotaCode": "L-3819A6DF"},
    )
    clients.stub("cloudwatch").add_response("get_metric_data", metric_values(), metric_query("G/Spot"))
    for stub in clients.stubs:
        stub.activate()
    report = quotas.preflight([("dev-mistral-7b", example("dev-mistral-7b"), True)], clients, now=NOW)
    (check,) = report.checks
    # Counted: two Spot g6.xlarge (8 vCPUs), one of them ours; the On-Demand g5 is another quota's.
    assert (check.value, check.usage, check.own, check.needed) == (8, 8, 4, 12)
    assert check.exceeded and check.after == 16
    assert "All G and VT Spot Instance Requests (L-3819A6DF) is 8 vCPUs" in check.message()


def test_access_denied_is_a_warning_naming_the_permission() -> None:
    clients = Clients("service-quotas", "cloudwatch", "ec2")
    clients.stub("ec2").add_client_error(
        "describe_instances", "UnauthorizedOperation", "You are not authorized"
    )
    clients.stub("service-quotas").add_client_error(
        "get_service_quota", "AccessDeniedException", "not authorized: servicequotas:GetServiceQuota"
    )  # fmt: skip
    for stub in clients.stubs:
        stub.activate()
    report = quotas.preflight([("prod-a", example("prod-llama-3-1-8b"), True)], clients, now=NOW)
    assert report.warnings == [
        "us-east-1: EC2 usage not read (missing permission ec2:DescribeInstances); the plan's own "
        "instances are not subtracted",
        "us-east-1: Running On-Demand G and VT instances (L-DB2E81BA) not checked: missing permission "
        "servicequotas:GetServiceQuota",
    ]
    (check,) = report.checks
    assert check.value is None and not report.exceeded


def sagemaker_quota(name: str, code: str, value: float) -> dict:
    return {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": code,
            "QuotaArn": f"arn:aws:servicequotas:{REGION}:123456789012:sagemaker/{code}", "QuotaName": name,
            "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False}  # fmt: skip


def test_sagemaker_quotas_are_found_by_name_and_endpoints_counted() -> None:
    spec = example("staging-qwen2-5-vl-7b")
    itype = spec.compute.instance_type
    ours = endpoint_name("staging-qwen2-5-vl-7b", itype)
    clients = Clients("service-quotas", "sagemaker")
    quota_stub, sm = clients.stub("service-quotas"), clients.stub("sagemaker")
    # Two pages, the quota on the second: the listing follows NextToken.
    quota_stub.add_response("list_service_quotas", {"Quotas": [sagemaker_quota(
        "ml.m5.large for endpoint usage", "L-AAAA1111", 4.0)], "NextToken": "page2"},
        {"ServiceCode": "sagemaker"})  # fmt: skip
    quota_stub.add_response("list_service_quotas", {"Quotas": [sagemaker_quota(
        f"{itype} for endpoint usage", "L-BBBB2222", 2.0)]},
        {"ServiceCode": "sagemaker", "NextToken": "page2"})  # fmt: skip
    created = NOW - dt.timedelta(days=1)
    sm.add_response("list_endpoints", {"Endpoints": [
        {"EndpointName": ours, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{ours}",
         "CreationTime": created, "LastModifiedTime": created, "EndpointStatus": "InService"},
        {"EndpointName": "theirs", "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/theirs",
         "CreationTime": created, "LastModifiedTime": created, "EndpointStatus": "InService"},
    ]}, {})  # fmt: skip
    for name, config, count in ((ours, "ours-config", 1), ("theirs", "their-config", 1)):
        sm.add_response("describe_endpoint", {
            "EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
            "EndpointConfigName": config, "EndpointStatus": "InService", "CreationTime": created,
            "LastModifiedTime": created,
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": count,
                                    "DesiredInstanceCount": count}],
        }, {"EndpointName": name})  # fmt: skip
        sm.add_response("describe_endpoint_config", {
            "EndpointConfigName": config, "CreationTime": created,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{config}",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": itype,
                                    "InitialInstanceCount": 1}],
        }, {"EndpointConfigName": config})  # fmt: skip
    for stub in clients.stubs:
        stub.activate()
    report = quotas.preflight([("staging-qwen2-5-vl-7b", spec, True)], clients, now=NOW)
    for stub in clients.stubs:
        stub.assert_no_pending_responses()
    (check,) = report.checks
    ceiling = quotas.ceiling(spec)
    assert (check.code, check.value, check.usage, check.own, check.needed) == ("L-BBBB2222", 2, 2, 1, ceiling)
    assert check.exceeded == (1 + ceiling > 2)
    assert check.link.endswith("/servicequotas/home/services/sagemaker/quotas/L-BBBB2222")


def test_a_sagemaker_type_with_no_applied_quota_reads_the_default() -> None:
    spec = example("staging-qwen2-5-vl-7b")
    itype = spec.compute.instance_type
    clients = Clients("service-quotas", "sagemaker")
    clients.stub("service-quotas").add_response(
        "list_service_quotas", {"Quotas": []}, {"ServiceCode": "sagemaker"}
    )
    clients.stub("service-quotas").add_response("list_aws_default_service_quotas", {"Quotas": [
        sagemaker_quota(f"{itype} for endpoint usage", "L-CCCC3333", 0.0)]},
        {"ServiceCode": "sagemaker"})  # fmt: skip
    clients.stub("sagemaker").add_response("list_endpoints", {"Endpoints": []}, {})
    for stub in clients.stubs:
        stub.activate()
    (check,) = quotas.preflight([("staging-x", spec, True)], clients, now=NOW).checks
    assert (check.code, check.value, check.usage) == ("L-CCCC3333", 0, 0)
    assert check.exceeded


def test_nothing_to_check_reads_nothing() -> None:
    report = quotas.preflight(
        [("prod-multimodal-api", example("prod-multimodal-api"), True)], Clients(), now=NOW
    )
    assert report.checked and report.checks == [] and report.exceeded == []


def test_the_console_link_format() -> None:
    assert quotas.console_link("ec2", "L-417A185B", "eu-west-1") == (
        "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/L-417A185B"
    )
    # Another partition's console is not guessed: the message names the console and region instead.
    assert quotas.console_link("ec2", "L-417A185B", "cn-north-1") == ""
    check = quotas.QuotaCheck("cn-north-1", "ec2", "L-417A185B", "Running On-Demand P instances", "vCPUs",
                              0, 0, 0, 192, ["x"])  # fmt: skip
    assert check.message().endswith("192 over. Request more: the Service Quotas console of cn-north-1")
