"""Each component against a figure computed by hand from the price table's numbers (us-east-1, 730 h).

Rounded results are compared within half a cent of the unrounded hand computation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cost import EXTERNAL, make_spec
from tooling import cost, repository

CENT = 0.005
ROOT = Path(__file__).parents[2]


def near(value: float) -> object:
    return pytest.approx(value, abs=CENT)


def test_ec2_gpu_instance_on_demand() -> None:
    e = cost.estimate(make_spec(compute={"service": "ec2", "instance_type": "g5.2xlarge"}), "dev")
    assert e.components["compute"] == near(1.212 * 730)  # 884.76


def test_spot_applies_the_documented_factor() -> None:
    compute = {"service": "ec2", "instance_type": "g6.xlarge", "spot": True}
    e = cost.estimate(make_spec(compute=compute), "dev")
    assert e.components["compute"] == near(0.8048 * 0.40 * 730)  # 235.0016


def test_ecs_gpu_instances_and_root_volumes_scale_with_count() -> None:
    spec = make_spec(
        compute={"service": "ecs-gpu", "instance_type": "g5.xlarge", "volume_gib": 150},
        scaling={"min": 2, "max": 5, "target": {"cpu_percent": 70}},
    )
    e = cost.estimate(spec, "prod")
    assert e.components["compute"] == near(2 * 1.006 * 730)  # 1468.76
    assert e.components["ebs"] == near(2 * 150 * 0.08)  # 24.00
    assert e.components_max["compute"] == near(5 * 1.006 * 730)  # 3671.90
    assert e.components_max["ebs"] == near(5 * 150 * 0.08)  # 60.00
    assert (e.units_min, e.units_max) == (2, 5)


def test_a_schedule_max_above_scaling_max_sets_the_maximum() -> None:
    spec = make_spec(
        scaling={
            "min": 1,
            "max": 2,
            "target": {"cpu_percent": 70},
            "schedules": [{"name": "peak", "cron": "0 9 ? * MON *", "min": 1, "max": 6}],
        }
    )
    assert cost.estimate(spec, "dev").units_max == 6


def test_sagemaker_instances_and_gateway_tasks() -> None:
    spec = make_spec(
        compute={"service": "sagemaker", "instance_type": "ml.g5.xlarge"},
        scaling={"min": 1, "max": 3, "target": {"invocations_per_instance": 60}},
    )
    # Gateway task: 1 vCPU x 0.03238 + 2 GB x 0.00356 + (21 - 20) GB x 0.000111 = 0.039611 $/h
    task_month = (0.03238 + 2 * 0.00356 + 0.000111) * 730  # 28.91603
    prod, staging = cost.estimate(spec, "prod"), cost.estimate(spec, "staging")
    assert prod.components["compute"] == near(1.408 * 730)  # 1027.84
    assert prod.components["gateway"] == near(2 * task_month)  # 57.83
    assert staging.components["gateway"] == near(task_month)  # 28.92
    assert prod.components_max["compute"] == near(3 * 1.408 * 730)
    assert prod.components_max["gateway"] == near(4 * task_month)  # max(4, scaling.max = 3)
    assert prod.components["ebs"] == 0


def test_fargate_arm64_with_free_storage_tier() -> None:
    compute = {"service": "ecs-fargate", "cpu": 8192, "memory": 16384, "architecture": "arm64"}
    e = cost.estimate(make_spec(engine=EXTERNAL, compute=compute), "prod")
    # 8 vCPU x 0.03238 + 16 GB x 0.00356 + 1 GB x 0.000111 = 0.316111 $/h x 730 = 230.761
    assert e.components["compute"] == near((8 * 0.03238 + 16 * 0.00356 + 1 * 0.000111) * 730)
    assert e.components["gateway"] == 0


def test_fargate_x86_with_extra_ephemeral_storage() -> None:
    compute = {
        "service": "ecs-fargate",
        "cpu": 1024,
        "memory": 2048,
        "architecture": "x86_64",
        "ephemeral_storage_gib": 50,
    }
    spec = make_spec(engine=EXTERNAL, compute=compute, scaling={"min": 3, "max": 3})
    # (1 x 0.04048 + 2 x 0.004445 + 30 x 0.000111) = 0.0527 $/h x 730 x 3 tasks = 115.413
    assert cost.estimate(spec, "dev").components["compute"] == near(0.0527 * 730 * 3)


def test_load_balancer_hours_and_lcus_that_grow_with_traffic() -> None:
    spec = make_spec(scaling={"min": 1, "max": 5, "target": {"cpu_percent": 60}})
    e = cost.estimate(spec, "dev")
    # LCUs: 0.5 + 0.1 GB an hour per instance: 0.6 at 1 instance, 1.0 at 5.
    assert e.components["load_balancer"] == near((0.0225 + 0.6 * 0.008) * 730)  # 19.929
    assert e.components_max["load_balancer"] == near((0.0225 + 1.0 * 0.008) * 730)  # 22.265


@pytest.mark.parametrize(
    ("network", "addresses"),
    [
        ({"nat_gateways": 2, "public": True, "certificate_arn": None}, 4),  # 2 EIPs + 2 ALB nodes
        ({"nat_gateways": 1, "public": False}, 1),  # 1 EIP, an internal ALB has none
        ({"nat_gateways": 0, "public": True, "vpc_endpoints": True}, 2),
        (
            {
                "vpc": "vpc-0123abcd",
                "public": True,
                "public_subnets": ["subnet-0000aaaa", "subnet-1111bbbb", "subnet-2222cccc"],
                "private_subnets": ["subnet-3333aaaa", "subnet-4444bbbb"],
            },
            3,  # one per AZ node, no NAT of ours
        ),
    ],
)
def test_public_ipv4_addresses(network: dict, addresses: int) -> None:
    spec = make_spec(model={"id": "s3://weights-bucket/org/model/"}, network=network)
    e = cost.estimate(spec, "dev")
    assert e.components["public_ipv4"] == near(addresses * 0.005 * 730)
    assert any(f"public IPv4: {addresses} address(es)" in n for n in e.assumptions)


@pytest.mark.parametrize("nat", [0, 1, 2])
def test_nat_gateway_hours(nat: int) -> None:
    spec = make_spec(
        model={"id": "s3://weights-bucket/org/model/"}, network={"nat_gateways": nat, "vpc_endpoints": True}
    )
    assert cost.estimate(spec, "dev").components["nat_gateway"] == near(nat * 0.045 * 730)


def test_launch_traffic_pulls_the_weights_through_nat_from_min_to_max() -> None:
    spec = make_spec(
        model={"id": "meta-llama/Llama-3.1-8B-Instruct"},
        scaling={
            "min": 1,
            "max": 4,
            "target": {"cpu_percent": 60},
            # Weekdays at 08:00 the floor goes to 3, at 18:00 back to 1: +2 starts five times a week.
            "schedules": [
                {"name": "day", "cron": "0 8 ? * MON-FRI *", "min": 3, "max": 4},
                {"name": "night", "cron": "0 18 ? * MON-FRI *", "min": 1, "max": 4},
            ],
        },
    )
    e = cost.estimate(spec, "prod")
    per_start = 8 * 2 + 0.01  # bf16 weights of an 8B model + ECR API calls without interface endpoints
    raises = 2 * 5 * 730 / 168  # 43.45 scheduled starts a month
    assert e.components["nat_data"] == near((2 * 1 + raises) * per_start * 0.045)
    # At maximum: 4 instances relaunched twice, the raises, and a daily scale-out from 1 to 4.
    assert e.components_max["nat_data"] == near((2 * 4 + raises + 3 * 730 / 24) * per_start * 0.045)
    assert any("16 GB of weights from Hugging Face per start" in n for n in e.assumptions)


def test_weights_from_s3_and_external_engines_pull_nothing_at_launch() -> None:
    s3 = make_spec(model={"id": "s3://weights-bucket/org/model/"}, network={"vpc_endpoints": True})
    assert cost.estimate(s3, "dev").components["nat_data"] == 0
    external = make_spec(engine=EXTERNAL, compute={"service": "ecs-fargate"}, scaling={"min": 2, "max": 2})
    # The gateway's prompts and answers cross NAT: 0.1 GB an hour per task x 730 x 2 tasks = 146 GB.
    assert cost.estimate(external, "dev").components["nat_data"] == near(146 * 0.045)


def test_data_transfer_out_only_from_an_internet_facing_load_balancer() -> None:
    public = cost.estimate(make_spec(network={"public": True}, scaling={"min": 2, "max": 2}), "dev")
    # answers: 0.1 GB an hour x 50 % x 730 h x 2 instances = 73 GB x 0.09
    assert public.components["data_transfer_out"] == near(73 * 0.09)
    assert cost.estimate(make_spec(network={"public": False}), "dev").components["data_transfer_out"] == 0


def test_container_insights_and_alarms() -> None:
    with_insights = cost.estimate(make_spec(observability={"container_insights": True}), "dev")
    without = cost.estimate(make_spec(observability={"container_insights": False}), "dev")
    assert with_insights.components["container_insights"] == near(25 * 0.30)
    assert without.components["container_insights"] == 0
    # 5 load balancer alarm metrics + no-healthy-capacity (GPU, never zero); no target tracking (min = max)
    assert without.components["alarms"] == near(6 * 0.10)


def test_an_existing_vpc_has_no_nat_of_ours() -> None:
    network = {
        "vpc": "vpc-0123abcd",
        "private_subnets": ["subnet-0000aaaa", "subnet-1111bbbb"],
        "allowed_cidrs": ["10.0.0.0/8"],
    }
    assert cost.estimate(make_spec(network=network), "dev").components["nat_gateway"] == 0


@pytest.mark.parametrize(
    ("compute", "network", "expected"),
    [
        # ecs-gpu: 4 common + ecs, ecs-agent, ecs-telemetry = 7 endpoints x 2 AZs x 0.01 x 730 = 102.20
        (None, {"vpc_endpoints": True}, 7 * 2 * 0.01 * 730),
        # sagemaker: 4 + sagemaker.api + sagemaker.runtime = 6 x 2 x 7.30 = 87.60
        ({"service": "sagemaker", "instance_type": "ml.g5.xlarge"}, {"vpc_endpoints": True}, 6 * 2 * 7.30),
        # ec2: the 4 common ones, in the 3 listed subnets of an existing VPC = 87.60
        (
            {"service": "ec2", "instance_type": "g5.xlarge"},
            {
                "vpc": "vpc-0123abcd",
                "private_subnets": ["subnet-0000aaaa", "subnet-1111bbbb", "subnet-2222cccc"],
                "allowed_cidrs": ["10.0.0.0/8"],
                "vpc_endpoints": True,
                "endpoint_private_dns": True,
            },
            4 * 3 * 0.01 * 730,
        ),
        # ...and none without endpoint_private_dns: a VPC we do not own gets no interface endpoints
        (
            {"service": "ec2", "instance_type": "g5.xlarge"},
            {
                "vpc": "vpc-0123abcd",
                "private_subnets": ["subnet-0000aaaa", "subnet-1111bbbb"],
                "allowed_cidrs": ["10.0.0.0/8"],
                "vpc_endpoints": True,
            },
            0.0,
        ),
        (None, {"vpc_endpoints": False}, 0.0),
    ],
)
def test_vpc_endpoints(compute: dict | None, network: dict, expected: float) -> None:
    sections = {"network": network} | ({"compute": compute} if compute else {})
    sections["observability"] = {"container_insights": False}
    e = cost.estimate(make_spec(**sections), "dev")
    # Hours, plus the logs' GB processed by the logs endpoint (0.01 a GB).
    logs_gb = 0.5 + 2.0 * (1 + (1 if sections.get("compute", {}).get("service") == "sagemaker" else 0))
    # The estimate is in cents, rounded half up (87.645 is 87.65).
    assert e.components["vpc_endpoints"] == near(cost.cents(expected + (logs_gb * 0.01 if expected else 0)))


def test_logs_ingestion_and_steady_state_storage() -> None:
    spec = make_spec(
        observability={"log_retention_days": 90, "container_insights": False}, scaling={"min": 2, "max": 2}
    )
    # 0.5 GB base + 2 GB x 2 instances = 4.5 GB a month: ingestion 4.5 x 0.50 = 2.25;
    # stored 4.5 GB x 90 days / (730 / 24 days a month) = 13.315 GB x 0.03 = 0.39945. Total 2.64945.
    ingested = 0.5 + 2.0 * 2
    stored = ingested * 90 / (730 / 24)
    assert cost.estimate(spec, "prod").components["logs"] == near(ingested * 0.50 + stored * 0.03)


def test_sagemaker_gateway_tasks_also_write_logs() -> None:
    spec = make_spec(
        compute={"service": "sagemaker", "instance_type": "ml.g5.xlarge"},
        observability={"log_retention_days": 14},
    )
    ingested = 0.5 + 2.0 * (1 + 2)  # 1 endpoint instance + 2 gateway tasks in prod = 6.5 GB
    stored = ingested * 14 * 24 / 730
    assert cost.estimate(spec, "prod").components["logs"] == near(ingested * 0.50 + stored * 0.03)


def test_secret_only_with_api_keys_and_always_one_kms_key() -> None:
    with_keys = cost.estimate(make_spec(auth={"api_keys": True}), "dev")
    without = cost.estimate(make_spec(auth={"api_keys": False}), "dev")
    assert (with_keys.components["secrets"], without.components["secrets"]) == (0.40, 0.0)
    assert with_keys.components["kms"] == without.components["kms"] == 1.00


@pytest.mark.parametrize(
    ("engine", "compute", "gb"),
    [
        ({"type": "vllm"}, {"service": "ec2", "instance_type": "g5.xlarge"}, 10.0),  # vLLM image
        ({"type": "vllm"}, {"service": "sagemaker", "instance_type": "ml.g5.xlarge"}, 10.2),  # + gateway
        (EXTERNAL, {"service": "ecs-fargate"}, 0.2),  # the gateway alone
    ],
)
def test_ecr_storage_of_the_images_a_deployment_runs(engine: dict, compute: dict, gb: float) -> None:
    e = cost.estimate(make_spec(engine=engine, compute=compute), "dev")
    assert e.components["ecr"] == near(gb * 0.10)


def test_prices_are_the_regions_own() -> None:
    away = cost.estimate(make_spec(region="eu-west-1", observability={"container_insights": False}), "dev")
    assert away.components["compute"] == near(1.123 * 730)  # g5.xlarge in eu-west-1, not 1.006 x a factor
    # No eu-west-1 service prices in the table: us-east-1's, and the estimate says so.
    assert away.components["kms"] == near(1.00)
    assert any(
        "eu-west-1: no service prices in the table, us-east-1 prices used" in n for n in away.assumptions
    )


def test_a_type_without_a_price_is_unpriced_and_said_so() -> None:
    spec = make_spec(region="ap-south-1", compute={"service": "ecs-gpu", "instance_type": "g6e.xlarge"})
    e = cost.estimate(spec, "dev")
    assert e.components["compute"] == 0
    assert e.unpriced == ["g6e.xlarge in ap-south-1"]
    assert e.unit.endswith("(unpriced)")
    assert any(n.startswith("UNPRICED: g6e.xlarge") for n in e.assumptions)


def test_totals_are_the_sum_of_their_components() -> None:
    spec = make_spec(scaling={"min": 1, "max": 4, "target": {"cpu_percent": 70}})
    e = cost.estimate(spec, "prod")
    assert list(e.components) == list(cost.COMPONENTS)
    assert e.monthly_min_usd == pytest.approx(sum(e.components.values()), abs=1e-9)
    assert e.monthly_max_usd == pytest.approx(sum(e.components_max.values()), abs=1e-9)
    assert e.monthly_scheduled_usd == pytest.approx(sum(e.components_scheduled.values()), abs=1e-9)
    assert e.monthly_min_usd < e.monthly_max_usd


def test_the_repository_examples() -> None:
    estimates = cost.estimate_all(repository.load(ROOT))
    by_stack = {e.stack_name: e for e in estimates}
    assert sorted(by_stack) == [
        "dev-mistral-7b",
        "prod-llama-3-1-8b",
        "prod-multimodal-api",
        "staging-qwen2-5-vl-7b",
    ]
    # The hand computations of the report, to the cent, at minimum scale (us-east-1 table prices).
    dev = by_stack["dev-mistral-7b"]
    starts = 2 * 1 + 5 * 730 / 168  # 2 relaunches + the five weekday mornings that raise 0 -> 1
    assert dev.components == {
        "compute": 235.00,  # 0.8048 x 0.40 Spot x 730
        "gateway": 0.0,
        "ebs": 8.00,  # 100 GiB x 0.08
        "load_balancer": 19.93,  # (0.0225 + (0.5 + 0.1) LCU x 0.008) x 730
        "public_ipv4": 3.65,  # 1 NAT Elastic IP x 0.005 x 730; internal ALB
        "nat_gateway": 32.85,  # 0.045 x 730
        "nat_data": cost.cents(starts * 14.01 * 0.045),  # 23.73 starts x (14 GB + 0.01) -> 14.96
        "data_transfer_out": 0.0,
        "vpc_endpoints": 0.0,
        "logs": 1.27,  # 2.5 GB x 0.50 + 2.5 x 7 x 24 / 730 GB x 0.03
        "container_insights": 0.0,
        "alarms": 0.70,  # 5 load balancer + 2 target tracking alarm metrics x 0.10
        "secrets": 0.40,
        "kms": 1.00,
        "ecr": 1.00,  # 10 GB x 0.10
    }
    assert dev.components["nat_data"] == 14.96
    assert dev.monthly_min_usd == 318.76
    llama = by_stack["prod-llama-3-1-8b"]
    assert llama.components == {
        "compute": 734.38,  # 1.006 x 730
        "gateway": 0.0,
        "ebs": 12.00,  # 150 GiB x 0.08
        "load_balancer": 19.93,
        "public_ipv4": 14.60,  # (2 NAT Elastic IPs + 2 internet-facing ALB nodes) x 0.005 x 730
        "nat_gateway": 65.70,  # 2 x 0.045 x 730
        "nat_data": 1.44,  # 2 starts x (16 GB + 0.01) x 0.045 = 1.4409
        "data_transfer_out": 3.29,  # 0.1 GB/h x 50 % x 730 = 36.5 GB x 0.09 = 3.285
        "vpc_endpoints": 0.0,
        "logs": 1.53,  # 2.6 GB x 0.50 + 2.6 x 90 x 24 / 730 GB x 0.03
        "container_insights": 7.50,  # 25 metrics x 0.30
        "alarms": 0.80,  # 5 + 1 no-healthy-capacity + 2 target tracking
        "secrets": 0.40,
        "kms": 1.00,
        "ecr": 1.00,
    }
    assert llama.monthly_min_usd == 863.57
    assert dev.monthly_scheduled_usd < dev.monthly_min_usd < dev.monthly_max_usd
    for e in estimates:
        if e is not dev:  # no schedules: the floor holds all month
            assert e.monthly_scheduled_usd == e.monthly_min_usd < e.monthly_max_usd


def test_estimate_all_skips_invalid_files_and_takes_plain_lists() -> None:
    loaded = repository.load(ROOT)
    broken = repository.DeploymentFile("dev", ROOT / "deployments/dev/nothing.yaml")
    assert len(cost.estimate_all([*loaded.valid, broken])) == len(loaded.valid)
