"""The pull-request comment put together from each environment's plan: no environment dropped unsaid.

pr.yml's plan jobs each write `plan/<env>.md` (`deployctl plan --format markdown`); the comment job
collects them with `deployctl plan-comment`. An environment whose plan job wrote nothing, and one whose
plan is too long, each keep a heading and a line saying so, and the comment stays within GitHub's limit.
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from tooling.cli import cli
from tooling.diff import PropertyChange, ResourceChange
from tooling.plan import Plan, StackPlan
from tooling.plan_output import COMMENT_LIMIT, MARKER, collect, markdown

ENVIRONMENTS = ("dev", "staging", "prod")


def plan_of(environment: str, stacks: int = 3, width: int = 40) -> str:
    big = [PropertyChange(f"Properties.P{i}", "x" * 100, "y" * 100) for i in range(width)]
    return markdown(
        Plan(
            "aws",
            [
                StackPlan(environment, f"svc-{i}", f"{environment}-svc-{i}", "update",
                          changes=[ResourceChange("R", "AWS::SNS::Topic", "modify", "false", big)])
                for i in range(stacks)
            ],
        ),
        limit=COMMENT_LIMIT,
    )  # fmt: skip


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^### <code>([a-z]+)</code>$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_small_plans_are_kept_whole_under_one_marker() -> None:
    plans = {e: plan_of(e, stacks=1, width=2) for e in ENVIRONMENTS}
    text = collect(plans)
    assert text.startswith(MARKER + "\n")
    assert text.count(MARKER) == 1
    assert list(sections(text)) == list(ENVIRONMENTS)
    assert all("<details" in body and "cut to fit" not in body for body in sections(text).values())


def test_an_environment_without_a_plan_is_named_not_dropped() -> None:
    text = collect({"dev": plan_of("dev", 1, 2), "staging": None, "prod": plan_of("prod", 1, 2)})
    assert list(sections(text)) == list(ENVIRONMENTS)
    assert "No plan for <code>staging</code>" in sections(text)["staging"]


def test_too_long_plans_are_cut_environment_by_environment_never_dropped() -> None:
    # Each plan alone nearly fills a comment: together they must be cut, and every one still shows.
    plans = {e: plan_of(e, stacks=20) for e in ENVIRONMENTS}
    assert all(len(p.encode()) > 40_000 for p in plans.values())
    text = collect(plans)
    assert len(text.encode()) <= COMMENT_LIMIT
    found = sections(text)
    assert list(found) == list(ENVIRONMENTS)
    for environment, body in found.items():
        assert f"- <code>{environment}</code>: 20 update" in body  # the summary line survives
        assert "cut to fit" in body or "too long" in body or "<details" in body
    assert any("cut to fit" in body for body in found.values())
    assert text.count("<details") == text.count("</details>")
    assert len(re.findall(r"^`{3,}", text, flags=re.M)) % 2 == 0


def test_even_a_tiny_limit_names_every_environment() -> None:
    plans = {e: plan_of(e, stacks=20) for e in ENVIRONMENTS}
    text = collect(plans, limit=2_000)
    assert len(text.encode()) <= 2_000
    assert list(sections(text)) == list(ENVIRONMENTS)


def test_a_plan_with_many_long_problems_still_fits_its_share() -> None:
    problems = [f"deployments/dev/x{i}.yaml:1:1: error: " + "z" * 900 for i in range(50)]
    text = markdown(Plan("aws", [StackPlan("dev", "a", "dev-a", "create")], problems=problems), limit=20_000)
    assert len(text.encode()) <= 20_000
    assert "- <code>dev</code>: 1 create" in text
    assert "more problem(s); run `make plan`" in text


def test_plan_comment_command_reports_missing_and_extra_plans(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    (plans / "plan-dev").mkdir(parents=True)
    (plans / "plan-dev" / "dev.md").write_text(plan_of("dev", 1, 2))
    (plans / "plan-qa").mkdir()
    (plans / "plan-qa" / "qa.md").write_text(plan_of("qa", 1, 2))
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "plan-comment", str(plans), "-e", "dev", "-e", "prod"]
    )
    assert result.exit_code == 0, result.output
    found = sections(result.output)
    assert list(found) == ["dev", "prod", "qa"]
    assert "No plan for <code>prod</code>" in found["prod"]
