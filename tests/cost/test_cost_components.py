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
    assert prod.components["compute"] == near(1.307 * 730)  # 954.11
    assert prod.components["gateway"] == near(2 * task_month)  # 57.83
    assert staging.components["gateway"] == near(task_month)  # 28.92
    assert prod.components_max["compute"] == near(3 * 1.307 * 730)
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


def test_load_balancer_hours_and_one_lcu() -> None:
    e = cost.estimate(make_spec(), "dev")
    assert e.components["load_balancer"] == near((0.0225 + 1 * 0.008) * 730)  # 22.265


@pytest.mark.parametrize(
    ("engine", "compute", "nat", "expected"),
    [
        # hours x count + GB processed: 2 x 0.045 x 730 + 0.045 x 100 GB = 65.70 + 4.50
        ({"type": "vllm"}, None, 2, 2 * 0.045 * 730 + 0.045 * 100),
        ({"type": "vllm"}, None, 1, 0.045 * 730 + 0.045 * 100),
        # the gateway alone sends 20 GB: 65.70 + 0.90
        (EXTERNAL, {"service": "ecs-fargate"}, 2, 2 * 0.045 * 730 + 0.045 * 20),
        ({"type": "vllm"}, None, 0, 0.0),
    ],
)
def test_nat_gateways(engine: dict, compute: dict | None, nat: int, expected: float) -> None:
    sections = {"engine": engine, "network": {"nat_gateways": nat}}
    if compute:
        sections["compute"] = compute
    assert cost.estimate(make_spec(**sections), "dev").components["nat_gateway"] == near(expected)


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
    assert cost.estimate(make_spec(**sections), "dev").components["vpc_endpoints"] == near(expected)


def test_logs_ingestion_and_steady_state_storage() -> None:
    spec = make_spec(observability={"log_retention_days": 90}, scaling={"min": 2, "max": 2})
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


def test_region_factor_scales_every_component() -> None:
    home = cost.estimate(make_spec(), "dev")
    away = cost.estimate(make_spec(region="eu-west-1"), "dev")
    assert away.components["compute"] == near(1.006 * 730 * 1.12)  # 822.5056
    assert away.components["kms"] == near(1.12)
    assert away.monthly_min_usd == pytest.approx(home.monthly_min_usd * 1.12, abs=0.06)
    assert any("eu-west-1: us-east-1 prices x 1.12" in n for n in away.assumptions)


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
    dev = by_stack["dev-mistral-7b"]
    # g6.xlarge Spot, 100 GiB, new VPC with 1 NAT, 7-day logs, api keys, vLLM image; at minimum scale:
    # 235.0016 compute + 8.00 EBS + 22.265 ALB + (32.85 + 4.50) NAT
    # + (2.5 GB x 0.50 + 2.5 x 7 x 24 / 730 x 0.03 = 1.26726) logs + 0.40 + 1.00 + 1.00
    logs = 2.5 * 0.50 + 2.5 * 7 * 24 / 730 * 0.03
    hand = 0.8048 * 0.4 * 730 + 100 * 0.08 + 0.0305 * 730 + 0.045 * 730 + 0.045 * 100 + logs + 2.40
    assert dev.monthly_min_usd == pytest.approx(hand, abs=0.03)
    # Schedules: on 65 h of the 168 h week; compute, EBS and per-instance logs scale with it.
    on = 65 / 168
    logs_on = (0.5 + 2 * on) * 0.50 + (0.5 + 2 * on) * 7 * 24 / 730 * 0.03
    hand_scheduled = 0.8048 * 0.4 * 730 * on + 8 * on + 0.0305 * 730 + 0.045 * 730 + 4.5 + logs_on + 2.40
    assert dev.monthly_scheduled_usd == pytest.approx(hand_scheduled, abs=0.03)
    assert dev.monthly_scheduled_usd < dev.monthly_min_usd < dev.monthly_max_usd
    for e in estimates:
        if e is not dev:  # no schedules: the floor holds all month
            assert e.monthly_scheduled_usd == e.monthly_min_usd < e.monthly_max_usd


def test_estimate_all_skips_invalid_files_and_takes_plain_lists() -> None:
    loaded = repository.load(ROOT)
    broken = repository.DeploymentFile("dev", ROOT / "deployments/dev/nothing.yaml")
    assert len(cost.estimate_all([*loaded.valid, broken])) == len(loaded.valid)
