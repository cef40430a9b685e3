from __future__ import annotations

from collections import defaultdict

import pytest

from tooling import catalog, cost


@pytest.mark.parametrize("instance_type", sorted(catalog.EC2_GPU_INSTANCES))
def test_every_ec2_type_the_spec_accepts_has_a_price(instance_type: str) -> None:
    assert cost.instance_price(instance_type) > 0


@pytest.mark.parametrize("instance_type", sorted(catalog.SAGEMAKER_GPU_INSTANCES))
def test_every_sagemaker_type_the_spec_accepts_has_a_price(instance_type: str) -> None:
    assert cost.instance_price(instance_type) > 0


def test_the_table_prices_nothing_the_spec_refuses() -> None:
    table = cost.prices()
    assert set(table["ec2_usd_per_hour"]) == set(catalog.EC2_GPU_INSTANCES)
    assert set(table["sagemaker_usd_per_hour"]) == set(catalog.SAGEMAKER_GPU_INSTANCES)


@pytest.mark.parametrize(
    ("instance_type", "usd_per_hour"),
    [("g5.xlarge", 1.006), ("g5.2xlarge", 1.212), ("g5.4xlarge", 1.624), ("ml.g5.xlarge", 1.307)],
)
def test_reference_instance_prices(instance_type: str, usd_per_hour: float) -> None:
    assert cost.instance_price(instance_type) == usd_per_hour


def test_reference_service_prices_and_convention() -> None:
    table = cost.prices()
    assert table["alb"]["hour"] == 0.0225
    assert table["ecr"]["gb_month"] == 0.10
    assert table["hours_per_month"] == 730
    assert table["source"]
    assert table["as_of"] == "2026-11"
    assert 0 < table["spot_factor"] < 1


def test_sagemaker_costs_more_than_the_same_ec2_instance() -> None:
    # SageMaker hosting is EC2 plus a managed-service premium: a cheaper ml.* price is a typo.
    for name in catalog.SAGEMAKER_GPU_INSTANCES:
        assert cost.instance_price(name) > cost.instance_price(name.removeprefix("ml.")), name


@pytest.mark.parametrize("section", ["ec2_usd_per_hour", "sagemaker_usd_per_hour"])
def test_more_vcpus_with_the_same_gpus_never_costs_less(section: str) -> None:
    table = catalog.EC2_GPU_INSTANCES if section.startswith("ec2") else catalog.SAGEMAKER_GPU_INSTANCES
    groups: dict[tuple[str, int], list[catalog.GpuInstance]] = defaultdict(list)
    for instance in table.values():
        groups[(instance.family, instance.gpus)].append(instance)
    for group in groups.values():
        ordered = sorted(group, key=lambda i: i.vcpus)
        prices = [cost.instance_price(i.name) for i in ordered]
        assert prices == sorted(prices), [i.name for i in ordered]


def test_region_factors() -> None:
    assert cost.region_factor("us-east-1") == (1.0, True)
    factor, known = cost.region_factor("eu-west-1")
    assert known
    assert factor > 1
    assert cost.region_factor("xx-nowhere-1") == (cost.prices()["default_region_factor"], False)


def test_region_table_names_real_regions() -> None:
    assert set(cost.prices()["region_factors"]) <= set(catalog.regions())
