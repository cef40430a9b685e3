from __future__ import annotations

import pytest

from tests.cost import make_spec
from tooling import cost
from tooling.spec import Scaling

MON, FRI, SAT = 1, 5, 6  # days after Sunday in the reference week (Sunday 00:00 UTC = minute 0)
WEEKS_PER_MONTH = 730 / 168


def minute(day: int, hour: int, minute: int = 0) -> int:
    return day * 1440 + hour * 60 + minute


def scaling(*schedules: tuple[str, int, int], base: int = 1, top: int = 2) -> Scaling:
    return Scaling.model_validate(
        {
            "min": base,
            "max": top,
            "target": {"cpu_percent": 60},
            "schedules": [
                {"name": f"s{i}", "cron": c, "min": lo, "max": hi} for i, (c, lo, hi) in enumerate(schedules)
            ],
        }
    )


def test_weekday_evenings_fire_monday_to_friday_at_20() -> None:
    assert cost.week_firings("0 20 ? * MON-FRI *") == [minute(d, 20) for d in range(MON, FRI + 1)]
    assert cost.week_firings("cron(0 20 ? * 2-6 *)") == [minute(d, 20) for d in range(MON, FRI + 1)]


def test_lists_steps_and_every_day() -> None:
    # minutes {0, 30} x hours {9, 10} x days {SUN, SAT} = 8 firings
    assert cost.week_firings("0/30 9-10 ? * SAT,SUN *") == [
        minute(0, 9),
        minute(0, 9, 30),
        minute(0, 10),
        minute(0, 10, 30),
        minute(SAT, 9),
        minute(SAT, 9, 30),
        minute(SAT, 10),
        minute(SAT, 10, 30),
    ]
    assert cost.week_firings("15 6 * * ? *") == [minute(d, 6, 15) for d in range(7)]


def test_a_range_that_wraps_past_saturday() -> None:
    assert cost.week_firings("0 0 ? * FRI-MON *") == [minute(d, 0) for d in (0, MON, FRI, SAT)]


@pytest.mark.parametrize("expression", ["0 0 1 * ? *", "0 0 L * ? *", "0 0 ? * 2#1 *", "0 0 ? * 6L *"])
def test_days_of_the_month_cannot_be_placed_in_a_week(expression: str) -> None:
    assert cost.week_firings(expression) is None


def test_dev_example_nights_off_mornings_on() -> None:
    # On 07:00-20:00 Monday to Friday: 13 h x 5 = 65 h a week at capacity 1.
    # Off: four weekday nights of 11 h (20:00-07:00) + Friday 20:00 to Monday 07:00 (4 + 48 + 7 = 59 h)
    # = 44 + 59 = 103 h at 0. 65 + 103 = 168. A month is 730 / 168 weeks.
    hours = cost.capacity_hours(scaling(("0 20 ? * MON-FRI *", 0, 0), ("0 7 ? * MON-FRI *", 1, 2)))
    assert hours == pytest.approx({1: 65 * WEEKS_PER_MONTH, 0: 103 * WEEKS_PER_MONTH})
    assert hours[1] == pytest.approx(282.44, abs=0.005)
    assert sum(hours.values()) == pytest.approx(730)


def test_without_schedules_the_minimum_holds_all_month() -> None:
    assert cost.capacity_hours(scaling(base=3, top=5)) == {3: 730}


def test_the_last_firing_of_the_week_holds_until_the_first() -> None:
    # Up to 4 on Monday 08:00, down to 2 on Friday 18:00: the weekend and Monday morning are at 2.
    hours = cost.capacity_hours(scaling(("0 8 ? * MON *", 4, 4), ("0 18 ? * FRI *", 2, 4), top=4))
    up = (minute(FRI, 18) - minute(MON, 8)) / 60  # 4 days and 10 hours = 106 h
    assert up == 106
    assert hours == pytest.approx({4: 106 * WEEKS_PER_MONTH, 2: 62 * WEEKS_PER_MONTH})


def test_one_schedule_alone_holds_all_week() -> None:
    assert cost.capacity_hours(scaling(("0 8 ? * MON *", 3, 3), top=3)) == pytest.approx({3: 730})


def test_schedules_firing_in_the_same_minute_apply_in_list_order() -> None:
    hours = cost.capacity_hours(scaling(("0 8 * * ? *", 5, 5), ("0 8 * * ? *", 2, 5), top=5))
    assert hours == pytest.approx({2: 730})


def test_unplaceable_schedules_are_left_out_and_said_so() -> None:
    spec = make_spec(
        scaling={
            "min": 1,
            "max": 3,
            "target": {"cpu_percent": 60},
            "schedules": [
                {"name": "month-start", "cron": "0 0 1 * ? *", "min": 3, "max": 3},
                {"name": "summer", "cron": "0 8 ? JUN-AUG MON *", "min": 2, "max": 3},
            ],
        }
    )
    assert cost.capacity_hours(spec.scaling) == pytest.approx({2: 730})
    notes = "\n".join(cost.estimate(spec, "dev").assumptions)
    assert "schedule 'month-start' fires on days of the month" in notes
    assert "schedule 'summer': month/year restriction ignored" in notes


def test_scheduled_estimate_uses_the_time_weighted_capacity() -> None:
    spec = make_spec(
        compute={"service": "ec2", "instance_type": "g5.xlarge", "volume_gib": 100},
        scaling={
            "min": 1,
            "max": 2,
            "target": {"cpu_percent": 60},
            "schedules": [
                {"name": "nights", "cron": "0 20 ? * MON-FRI *", "min": 0, "max": 0},
                {"name": "mornings", "cron": "0 7 ? * MON-FRI *", "min": 1, "max": 2},
            ],
        },
    )
    e = cost.estimate(spec, "dev")
    assert e.units_scheduled == pytest.approx(65 / 168, abs=1e-4)
    # 1.006 $/h x 282.44 h on; the 100 GiB volume x $0.08 x 65/168 of the month.
    assert e.components_scheduled["compute"] == pytest.approx(1.006 * 65 * 730 / 168, abs=0.005)
    assert e.components_scheduled["ebs"] == pytest.approx(100 * 0.08 * 65 / 168, abs=0.005)
    assert e.components["compute"] == pytest.approx(1.006 * 730, abs=0.005)
