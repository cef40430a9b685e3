"""`deployctl cost`, and the budget guard in validate and plan."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tooling.cli import cli
from tooling.cost import table

ROOT = Path(__file__).parents[2]
OVER = """\
name: pricey
owner: team@example.com
region: us-east-1
model: {id: meta-llama/Llama-3.1-8B-Instruct}
engine: {type: vllm}
compute: {service: ecs-gpu, instance_type: g5.12xlarge}
budget: {monthly_usd: 500}
"""


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_cost_json_for_the_examples() -> None:
    code, out = run(ROOT, "cost", "--format", "json")
    assert code == 0
    data = json.loads(out)
    rows = {(d["environment"], d["name"]): d for d in data["deployments"]}
    llama = rows[("prod", "llama-3-1-8b")]
    assert llama["monthly_min_usd"] <= llama["monthly_scheduled_usd"] <= llama["monthly_max_usd"]
    assert round(sum(llama["components"].values()), 2) == llama["monthly_min_usd"]
    mistral = rows[("dev", "mistral-7b")]
    assert mistral["monthly_scheduled_usd"] < mistral["monthly_min_usd"]  # off at night
    assert set(data["totals"]["environments"]) == {"dev", "staging", "prod"}


def test_cost_text_and_markdown_say_how_old_the_prices_are() -> None:
    as_of = table.as_of().isoformat()
    code, out = run(ROOT, "cost")
    assert code == 0 and "prod-llama-3-1-8b" in out
    assert f"prices as of {as_of} (" in out
    code, out = run(ROOT, "cost", "--format", "markdown")
    assert code == 0 and out.lstrip().startswith(("|", "#", "**"))
    assert f"_prices as of {as_of} (" in out
    code, out = run(ROOT, "cost", "--format", "json")
    data = json.loads(out)["price_table"]
    assert data["as_of"] == as_of and data["age_days"] >= 0


def test_over_budget_warns_and_fails_when_asked(tmp_path: Path) -> None:
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/pricey.yaml").write_text(OVER, encoding="utf-8")
    code, out = run(tmp_path, "validate")
    assert code == 0
    assert "warning: budget.monthly_usd: estimated $" in out and "[SPEC230]" in out
    code, out = run(tmp_path, "validate", "--fail-over-budget")
    assert code == 1 and "error: budget.monthly_usd" in out
    assert run(tmp_path, "cost")[0] == 0
    assert run(tmp_path, "cost", "--fail-over-budget")[0] == 1
