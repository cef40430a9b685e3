"""Fallback instance types and an on-demand base under Spot: what the estimate prices and the range it gives.

Figures by hand from the us-east-1 table: g6.xlarge 0.8048, g5.xlarge 1.006, g6e.xlarge 1.861 $/h.
"""

from __future__ import annotations

import pytest

from tests.cost import make_spec
from tooling import cost

CENT = 0.005
HOURS = 730
G6, G5, G6E = 0.8048, 1.006, 1.861


def near(value: float) -> object:
    return pytest.approx(value, abs=CENT)


def _fleet(**compute: object) -> cost.Estimate:
    spec = make_spec(
        compute={"service": "ec2", "instance_types": ["g6.xlarge", "g5.xlarge", "g6e.xlarge"], **compute},
        scaling={"min": 2, "max": 4, "target": {"requests_per_target": 100}},
    )
    return cost.estimate(spec, "dev")


def test_fallback_types_are_priced_at_the_first_with_a_range_over_all() -> None:
    e = _fleet()
    assert e.components["compute"] == near(2 * G6 * HOURS)  # the first choice: 1175.01
    others = e.monthly_min_usd - e.components["compute"]
    low, high = e.range("min")
    assert low == near(others + 2 * G6 * HOURS)  # g6.xlarge is also the cheapest
    assert high == near(others + 2 * G6E * HOURS)  # every instance on g6e.xlarge: 2717.06
    max_low, max_high = e.range("max")
    assert max_high - max_low == near(4 * (G6E - G6) * HOURS)
    assert e.unit == "g6.xlarge|g5.xlarge|g6e.xlarge"
    assert any("fallback types: priced at g6.xlarge" in note for note in e.assumptions)


def test_the_range_starts_at_the_cheapest_type_wherever_it_is_listed() -> None:
    spec = make_spec(compute={"service": "ecs-gpu", "instance_types": ["g5.xlarge", "g6.xlarge"]})
    e = cost.estimate(spec, "dev")
    others = e.monthly_min_usd - e.components["compute"]
    assert e.components["compute"] == near(G5 * HOURS)
    assert e.range("min") == (near(others + G6 * HOURS), near(others + G5 * HOURS))


def test_one_type_has_no_range() -> None:
    e = cost.estimate(make_spec(compute={"service": "ec2", "instance_type": "g5.xlarge"}), "dev")
    assert e.ranges == {}
    assert e.range("max") == (e.monthly_max_usd, e.monthly_max_usd)


def test_spot_above_the_on_demand_base() -> None:
    e = _fleet(spot=True, on_demand_base=1)
    # At minimum scale one of the two instances is on-demand, the other Spot at 40 %.
    assert e.components["compute"] == near((1 + 0.40) * G6 * HOURS)
    # At maximum, one on-demand and three Spot.
    assert e.components_max["compute"] == near((1 + 3 * 0.40) * G6 * HOURS)
    low, high = e.range("max")
    others = e.monthly_max_usd - e.components_max["compute"]
    assert (low, high) == (near(others + 2.2 * G6 * HOURS), near(others + 2.2 * G6E * HOURS))
    assert e.unit == "g6.xlarge|g5.xlarge|g6e.xlarge spot above 1 on-demand"
    assert any("the first 1 instance(s) in force are on-demand" in note for note in e.assumptions)


def test_all_spot_without_a_base_is_the_old_spot_figure() -> None:
    spec = make_spec(compute={"service": "ec2", "instance_type": "g6.xlarge", "spot": True})
    assert cost.estimate(spec, "dev").components["compute"] == near(0.40 * G6 * HOURS)


def test_the_scheduled_figure_splits_each_capacity_at_the_base() -> None:
    """Weekdays 07:00-20:00 at 3 instances, otherwise 1 (65 and 103 hours a week); base 2.

    At 3: 2 on-demand + 1 Spot; at 1: 1 on-demand. A split of the average capacity instead would price
    min(avg, 2) on demand, which is wrong whenever the capacity crosses the base.
    """
    spec = make_spec(
        compute={"service": "ec2", "instance_type": "g6.xlarge", "spot": True, "on_demand_base": 2},
        scaling={
            "min": 1,
            "max": 3,
            "target": {"requests_per_target": 100},
            "schedules": [
                {"name": "day", "cron": "0 7 ? * MON-FRI *", "min": 3, "max": 3},
                {"name": "night", "cron": "0 20 ? * MON-FRI *", "min": 1, "max": 3},
            ],
        },
    )
    weeks = HOURS / 168
    day, night = 65 * weeks, 103 * weeks
    expected = (day * (2 + 0.40) + night * 1) * G6
    assert cost.estimate(spec, "dev").components_scheduled["compute"] == near(expected)


def test_renderings_show_the_range() -> None:
    e = _fleet()
    low, high = (cost.format_usd(v) for v in e.range("min"))
    assert f"{cost.format_usd(e.monthly_min_usd)} ({low}–{high})" in cost.to_markdown([e])
    data = cost.to_json([e])["deployments"][0]
    assert data["monthly_range_usd"]["min"] == [e.range("min")[0], e.range("min")[1]]
    assert data["monthly_range_usd"]["max"][1] > data["monthly_range_usd"]["max"][0]
