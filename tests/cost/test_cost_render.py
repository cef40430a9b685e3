from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.cost import make_spec
from tooling import cost, repository

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def estimates() -> list[cost.Estimate]:
    return cost.estimate_all(repository.load(ROOT))


def test_json_shape(estimates: list[cost.Estimate]) -> None:
    data = json.loads(json.dumps(cost.to_json(estimates)))  # JSON-serialisable as is
    assert set(data) == {"version", "currency", "hours_per_month", "price_table", "deployments", "totals"}
    assert (data["version"], data["currency"], data["hours_per_month"]) == (1, "USD", 730)
    assert set(data["price_table"]) == {"source", "as_of", "provenance"}
    assert set(data["deployments"][0]) >= {"unpriced", "assumptions"}
    first = data["deployments"][0]
    for key in ("environment", "name", "monthly_min_usd", "monthly_max_usd", "monthly_scheduled_usd"):
        assert key in first
    assert set(first["components"]) == set(cost.COMPONENTS)
    assert set(first["units"]) == {"min", "max", "scheduled"}
    assert isinstance(first["assumptions"], list)
    assert first["assumptions"]


def test_json_totals_per_environment_and_overall(estimates: list[cost.Estimate]) -> None:
    totals = cost.to_json(estimates)["totals"]
    assert sorted(totals["environments"]) == ["dev", "prod", "staging"]
    prod = [e for e in estimates if e.environment == "prod"]
    assert len(prod) == 2
    assert totals["environments"]["prod"]["monthly_min_usd"] == pytest.approx(
        prod[0].monthly_min_usd + prod[1].monthly_min_usd
    )
    for key in ("monthly_min_usd", "monthly_max_usd", "monthly_scheduled_usd"):
        assert totals["overall"][key] == pytest.approx(sum(getattr(e, key) for e in estimates))


def test_markdown(estimates: list[cost.Estimate]) -> None:
    text = cost.to_markdown(estimates)
    assert text.startswith("### Monthly cost estimate\n")
    assert "| Environment | Deployment | Runs on | Minimum | Scheduled | Maximum | Budget |" in text
    staging = next(e for e in estimates if e.environment == "staging")
    row = (
        f"| staging | qwen2-5-vl-7b | sagemaker: ml.g5.2xlarge | {cost.format_usd(staging.monthly_min_usd)} |"
    )
    assert row in text
    assert "| **staging** | **total** |" in text
    assert "| **all** | **total** |" in text
    assert f"| Compute | {cost.format_usd(estimates[0].components['compute'], cents=True)} |" in text
    assert "- dev-mistral-7b: Spot priced at 40% of on-demand" in text
    assert cost.to_markdown([]).endswith("No valid deployments to estimate.\n")


def test_text(estimates: list[cost.Estimate]) -> None:
    console = Console(record=True, width=220)
    console.print(cost.to_text(estimates))
    text = console.export_text()
    for e in estimates:
        assert e.stack_name in text
        assert cost.format_usd(e.monthly_max_usd) in text
    overall = cost.totals(estimates)["overall"]["monthly_min_usd"]
    assert cost.format_usd(overall) in text
    assert "Assumptions:" in text


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (734, 1468, "+$734 → $1,468"),
        (1468, 734, "−$734 → $734"),
        (None, 1234.4, "+$1,234 → $1,234"),
        (500, None, "−$500 → $0"),
        (100, 100.2, "±$0 → $100"),
        (0, 1_234_567.49, "+$1,234,567 → $1,234,567"),
        (1000.4, 2000.6, "+$1,000 → $2,001"),  # the change rounded, not a difference of rounded figures
    ],
)
def test_format_delta(before: float | None, after: float | None, expected: str) -> None:
    assert cost.format_delta(before, after) == expected


@pytest.mark.parametrize(
    ("amount", "cents", "expected"),
    [(1468, False, "$1,468"), (0.4, True, "$0.40"), (-12.5, True, "−$12.50"), (1234.5, True, "$1,234.50")],
)
def test_format_usd(amount: float, cents: bool, expected: str) -> None:
    assert cost.format_usd(amount, cents=cents) == expected


def test_delta_between_estimates() -> None:
    small = cost.estimate(make_spec(scaling={"min": 1, "max": 1}), "prod")
    large = cost.estimate(make_spec(scaling={"min": 2, "max": 2}), "prod")
    added = large.monthly_min_usd - small.monthly_min_usd
    assert cost.delta(small, large) == pytest.approx(added)
    assert cost.delta(large, small) == pytest.approx(-added)
    assert cost.delta(None, small) == small.monthly_min_usd
    assert cost.delta(small, None) == -small.monthly_min_usd
    assert cost.delta(small, large, basis="max") == pytest.approx(
        large.monthly_max_usd - small.monthly_max_usd
    )


def test_over_budget() -> None:
    spec = make_spec(budget={"monthly_usd": 500})  # one g5.xlarge alone is 734.38 a month
    e = cost.estimate(spec, "prod")
    message = cost.over_budget(e, spec)
    assert message is not None
    assert f"estimated {cost.format_usd(e.monthly_min_usd)}/month at minimum scale" in message
    assert "budget.monthly_usd $500" in message
    assert cost.over_budget(e) == message  # the estimate remembers its budget
    assert cost.to_json([e])["deployments"][0]["over_budget"] == message
    roomy = make_spec(budget={"monthly_usd": 5000})
    assert cost.over_budget(cost.estimate(roomy, "prod"), roomy) is None
    assert cost.over_budget(e, make_spec()) is None  # a spec without a budget


def test_examples_are_within_budget_at_minimum_scale(estimates: list[cost.Estimate]) -> None:
    assert [cost.over_budget(e) for e in estimates] == [None] * len(estimates)


def test_the_plan_says_how_old_the_prices_are() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from tooling import plan_output
    from tooling.cost import table

    cost_estimate = importlib.import_module("tooling.cost.estimate")

    stack = SimpleNamespace(priced=True, base_unpriced=False)
    plan = SimpleNamespace(stacks=[stack], monthly_totals=lambda: (100.0, 250.0))
    later = table.as_of() + dt.timedelta(days=12)
    line = plan_output._total_cost(plan, later)
    assert line.startswith("Monthly estimate +$150 → $250 in all (prices as of ")
    assert "(12 days old)" in line
    # Where the prices come from, as the note says it (the Price List, or recorded data not yet read
    # from AWS): the same words as `deployctl cost`.
    assert line.endswith(f"({cost_estimate.prices_note(later)})")
