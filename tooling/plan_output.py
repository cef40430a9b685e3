"""The plan as people and machines read it: a terminal view, a pull-request comment, JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from tooling.cost import format_delta, format_usd, prices_note
from tooling.diff import ResourceChange
from tooling.plan import Plan, StackPlan, mask

SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-change": "=", "invalid": "!"}
CHANGE_SYMBOL = {"add": "+", "modify": "~", "remove": "-"}
COLOR = {"create": "green", "update": "yellow", "replace": "red", "delete": "red", "no-change": "dim",
         "invalid": "magenta"}  # fmt: skip
# GitHub refuses comments longer than this.
COMMENT_LIMIT = 65_536
MARKER = "<!-- deployctl-plan -->"
VALUE_WIDTH = 120


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    updates = s["update"] + s["replace"]
    return (
        f"{s['deployments']} deployments: {s['create']} to create, {updates} to update "
        f"({s['replace']} replacing), {s['delete']} to delete, {s['no-change']} unchanged, "
        f"{s['invalid']} invalid"
    )


def show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = json.dumps(mask(value), sort_keys=True) if not isinstance(value, str) else mask(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _change_lines(change: ResourceChange) -> list[str]:
    replace = {"true": " (replace)", "conditional": " (may replace)"}.get(change.replacement, "")
    lines = [f"{CHANGE_SYMBOL[change.action]} {change.logical_id} ({change.resource_type}){replace}"]
    if change.action == "modify":
        lines += [f"    {p.path}: {show(p.before)} → {show(p.after)}" for p in change.properties]
    return lines


def _cost_text(stack: StackPlan) -> str:
    if not stack.priced:
        return ""
    if stack.base_unpriced:
        text = f"Monthly estimate {format_usd(stack.monthly_after_usd or 0.0)} (the base was not priced)"
        return text + (" (over budget)" if stack.over_budget else "")
    text = f"Monthly estimate {format_delta(stack.monthly_before_usd, stack.monthly_after_usd)}"
    return text + (" (over budget)" if stack.over_budget else "")


# Stacks with a budget filter it on this cost-allocation tag, which reads $0 until it is active.
BUDGET_TAG_NOTE = (
    "New stacks' budgets filter on the `deployctl:stack` cost-allocation tag, which must be active in "
    "the account: `deployctl bootstrap` and each deploy activate it once AWS has seen it in billing data "
    "(up to a day after the first deploy; in an AWS Organization, the management account activates it)."
)


def _creates(plan: Plan) -> bool:
    return any(s.action == "create" for s in plan.stacks)


def print_text(plan: Plan, console: Console) -> None:
    console.print(f"[bold]Plan against {escape(plan.against)}[/]: {summary_line(plan)}")
    if total := _total_cost(plan):
        console.print(total)
    for problem in plan.problems:
        console.print(f"[red]{escape(problem)}[/]")
    for stack in plan.stacks:
        if stack.action == "no-change":
            continue
        color = COLOR[stack.action]
        cost = _cost_text(stack)
        console.print(
            f"\n[{color}]{SYMBOL[stack.action]} {stack.stack_name}[/] [dim]{stack.action}[/]"
            + (f"  {escape(cost)}" if cost else "")
        )
        for error in stack.errors:
            console.print(f"    [red]{escape(error)}[/]")
        for warning in stack.warnings:
            console.print(f"    [yellow]{escape(warning)}[/]")
        if stack.over_budget:
            console.print(f"    [red]over budget: {escape(stack.over_budget)}[/]")
        if stack.action in ("update", "replace", "delete"):
            for change in stack.changes:
                for line in _change_lines(change):
                    console.print(f"  {escape(line)}")
        elif stack.action == "create":
            console.print(f"  [dim]{len(stack.changes)} resources[/]")
    unchanged = [s.stack_name for s in plan.stacks if s.action == "no-change"]
    if unchanged:
        console.print(f"\n[dim]= unchanged: {', '.join(unchanged)}[/]")
    if _creates(plan):
        console.print(f"\n[dim]{escape(BUDGET_TAG_NOTE)}[/]")


def markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    """The pull-request comment: summary, then a collapsible section per stack, cut to fit GitHub."""
    head = [MARKER, "## deployctl plan", "", f"**{summary_line(plan)}** (against `{plan.against}`)", ""]
    total = _total_cost(plan)
    if total:
        head += [total, ""]
    head += [f"> {p}" for p in plan.problems]
    if _creates(plan):
        head += [f"_{BUDGET_TAG_NOTE}_", ""]
    sections = [_section(stack) for stack in plan.stacks if stack.action != "no-change"]
    unchanged = [s.stack_name for s in plan.stacks if s.action == "no-change"]
    if unchanged:
        sections.append(f"Unchanged: {', '.join(f'`{n}`' for n in unchanged)}\n")
    body = "\n".join(head) + "\n"
    for index, section in enumerate(sections):
        cut = len(sections) - index
        note = f"\n_… {cut} more section(s) cut to fit GitHub's comment limit; run `make plan`._\n"
        if len(body) + len(section) + len(note) > limit:
            return body + note
        body += section
    return body


def _section(stack: StackPlan) -> str:
    cost = _cost_text(stack)
    title = f"<code>{SYMBOL[stack.action]}</code> <b>{stack.stack_name}</b>: {stack.action}"
    if cost:
        title += f" · {cost}"
    lines = ["<details" + (" open" if stack.action in ("replace", "delete", "invalid") else "") + ">",
             f"<summary>{title}</summary>", ""]  # fmt: skip
    lines += [f"- :x: `{e}`" for e in stack.errors]
    lines += [f"- :warning: `{w}`" for w in stack.warnings]
    if stack.over_budget:
        lines.append(f"- :money_with_wings: **over budget**: {stack.over_budget}")
    if stack.changes and stack.action != "invalid":
        lines += ["", "```diff"]
        for change in stack.changes:
            first, *rest = _change_lines(change)
            lines.append(
                ("-" if change.action == "remove" else "+" if change.action == "add" else "!") + " " + first
            )
            lines += [f"  {line.strip()}" for line in rest]
        lines.append("```")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _total_cost(plan: Plan, today: dt.date | None = None) -> str:
    if not any(s.priced for s in plan.stacks):
        return ""
    before, after = plan.monthly_totals()
    # How old the prices are, from the table's as_of: a stale table is a reason to doubt the figure.
    age = f" ({prices_note(today or dt.datetime.now(dt.UTC).date())})"
    if any(s.base_unpriced for s in plan.stacks):
        return f"Monthly estimate {format_usd(after)} in all (the base revision was not priced){age}"
    return f"Monthly estimate {format_delta(before, after)} in all{age}"


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False)
