"""The plan as people and machines read it: a terminal view, a pull-request comment, JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from tooling.cost import format_delta, format_usd, prices_note
from tooling.diff import ResourceChange
from tooling.plan import ORDER, Plan, StackPlan, mask

ORDER_OF = ORDER

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


def show_change(before: Any, after: Any) -> tuple[str, str]:
    """Both values as `show` prints them; when they are long and alike (a dashboard body, a policy),
    from a little before where they first differ, so the change itself is what the reviewer sees."""
    if before is None or after is None:
        return show(before), show(after)
    old, new = (v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in (before, after))
    old, new = mask(old), mask(new)
    if max(len(old), len(new)) <= VALUE_WIDTH:
        return show(before), show(after)
    first = next(
        (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new))
    )
    start = max(0, first - 20)

    def window(text: str) -> str:
        part = ("…" if start else "") + text[start:]
        return part if len(part) <= VALUE_WIDTH else part[: VALUE_WIDTH - 1] + "…"

    return window(old), window(new)


def _change_lines(change: ResourceChange) -> list[str]:
    replace = {"true": " (replace)", "conditional": " (may replace)"}.get(change.replacement, "")
    lines = [f"{CHANGE_SYMBOL[change.action]} {change.logical_id} ({change.resource_type}){replace}"]
    if change.action == "modify":
        for p in change.properties:
            before, after = show_change(p.before, p.after)
            lines.append(f"    {p.path}: {before} → {after}")
    return lines


def _images(tags: dict[str, str]) -> str:
    """The image tags a deploy sets, as the parameters they go to."""
    return ", ".join(f"{key}={tag}" for key, tag in sorted(tags.items()))


def _cost_text(stack: StackPlan) -> str:
    if not stack.priced:
        return ""
    if stack.base_unpriced:
        text = f"Monthly estimate {format_usd(stack.monthly_after_usd or 0.0)} (the base was not priced)"
        return text + (" (over budget)" if stack.over_budget else "")
    text = f"Monthly estimate {format_delta(stack.monthly_before_usd, stack.monthly_after_usd)}"
    if stack.monthly_after_range_usd:
        low, high = (format_usd(v) for v in stack.monthly_after_range_usd)
        if low != high:
            text += f" (first choice; {low}–{high} across the fallback types)"
    return text + (" (over budget)" if stack.over_budget else "")


# Stacks with a budget filter it on this cost-allocation tag, which reads $0 until it is active.
BUDGET_TAG_NOTE = (
    "New stacks' budgets filter on the `deployctl:stack` cost-allocation tag, which must be active in "
    "the account: `deployctl bootstrap` and each deploy activate it once AWS has seen it in billing data "
    "(up to a day after the first deploy; in an AWS Organization, the management account activates it)."
)


QUOTA_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}
QUOTA_MARK = {"error": ":no_entry:", "warning": ":warning:", "info": ":information_source:"}


# The only links the comment makes: the Service Quotas console page of a quota (tooling/quotas.py).
_QUOTA_LINK = re.compile(
    r"https://[a-z0-9-]+\.console\.aws\.amazon\.com/servicequotas/home/services/[a-z0-9-]+/quotas/[A-Za-z0-9-]+"
)


def _quota_lines(plan: Plan) -> list[str]:
    """The quota preflight, one line per quota: in the head, so no cut drops an exceeded quota."""
    report = plan.quotas
    if report is None:
        return []
    if not report.checked:
        return [f"- {QUOTA_MARK['info']} {text(report.note)}", ""]
    lines = []
    for check in report.checks:
        line = f"- {QUOTA_MARK['error' if check.exceeded else 'info']} {text(check.message(link=False))}"
        if check.exceeded and _QUOTA_LINK.fullmatch(check.link):
            line += f" · [request more]({check.link})"
        lines.append(line)
    lines += [f"- {QUOTA_MARK['warning']} {text(w)}" for w in report.warnings]
    return [*lines, ""] if lines else []


def _creates(plan: Plan) -> bool:
    return any(s.action == "create" for s in plan.stacks)


def print_text(plan: Plan, console: Console) -> None:
    console.print(f"[bold]Plan against {escape(plan.against)}[/]: {summary_line(plan)}")
    if total := _total_cost(plan):
        console.print(total)
    for problem in plan.problems:
        console.print(f"[red]{escape(problem)}[/]")
    for level, line in plan.quotas.lines() if plan.quotas else []:
        console.print(f"[{QUOTA_STYLE[level]}]{escape(line)}[/]", soft_wrap=True)
    for stack in plan.stacks:
        if stack.action == "no-change":
            continue
        color = COLOR[stack.action]
        cost = _cost_text(stack)
        console.print(
            f"\n[{color}]{SYMBOL[stack.action]} {stack.stack_name}[/] [dim]{stack.action}[/]"
            + (f"  {escape(cost)}" if cost else "")
        )
        if stack.recreate:
            console.print(f"    [yellow]recreate ({escape(stack.recreate)})[/]")
        for error in stack.errors:
            console.print(f"    [red]{escape(error)}[/]")
        for warning in stack.warnings:
            console.print(f"    [yellow]{escape(warning)}[/]")
        if stack.over_budget:
            console.print(f"    [red]over budget: {escape(stack.over_budget)}[/]")
        if stack.image_tags:
            console.print(f"    images: {escape(_images(stack.image_tags))}")
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


# Characters that markdown or HTML would act on, written as numeric character references: they show
# as themselves, inside <code> too, and no value can close a tag, a span or a fence, or @-mention.
_ACTIVE = set("&<>\"'`*_[]()~|\\#!:@$")


def text(value: object) -> str:
    """A value from a spec, an error or AWS, safe anywhere in the comment (one line)."""
    return "".join(f"&#{ord(c)};" if c in _ACTIVE else c for c in " ".join(str(value).split()))


def code(value: object) -> str:
    return f"<code>{text(value)}</code>"


def _size(value: str) -> int:
    return len(value.encode())  # GitHub counts characters; bytes are never fewer


def _environment_lines(plan: Plan) -> list[str]:
    """One summary line per environment: kept whatever else is cut."""
    lines = []
    for environment in sorted({s.environment for s in plan.stacks}):
        counts: dict[str, int] = {}
        for stack in plan.stacks:
            if stack.environment == environment:
                counts[stack.action] = counts.get(stack.action, 0) + 1
        shown = ", ".join(f"{n} {a}" for a, n in sorted(counts.items(), key=lambda kv: ORDER_OF[kv[0]]))
        lines.append(f"- {code(environment or '(none)')}: {text(shown)}")
    return lines


def markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    """The pull-request comment: summary, then a collapsible section per stack, cut to fit GitHub.

    Every value is escaped (see `text`); each section is whole (its fence and <details> closed), and
    when sections are cut the summary lines of every environment stay.
    """
    head = [MARKER, "## deployctl plan", "", f"**{summary_line(plan)}** (against {code(plan.against)})", ""]
    total = _total_cost(plan)
    if total:
        head += [total, ""]
    head += [*_environment_lines(plan), ""]
    tail = [*_quota_lines(plan), *([f"_{BUDGET_TAG_NOTE}_", ""] if _creates(plan) else [])]
    # Problems are listed up to 50, and fewer when they alone would pass the limit: the summary and
    # the environment lines above them always fit.
    shown = min(50, len(plan.problems))
    while True:
        listed = [f"> {code(p)}" for p in plan.problems[:shown]]
        if len(plan.problems) > shown:
            listed.append(f"> … and {len(plan.problems) - shown} more problem(s); run `make plan`")
        if shown == 0 or _size("\n".join(head + listed + tail)) + 200 <= limit:
            break
        shown //= 2
    head += listed + tail
    sections = [_section(stack) for stack in plan.stacks if stack.action != "no-change"]
    unchanged = [s.stack_name for s in plan.stacks if s.action == "no-change"]
    if unchanged:
        sections.append(f"Unchanged: {', '.join(code(n) for n in unchanged)}\n")
    body = "\n".join(head) + "\n"
    for index, section in enumerate(sections):
        cut = len(sections) - index
        note = f"\n_… {cut} more section(s) cut to fit GitHub's comment limit; run `make plan`._\n"
        if _size(body) + _size(section) + _size(note) > limit:
            return body + note
        body += section
    return body


def _section(stack: StackPlan) -> str:
    cost = _cost_text(stack)
    title = f"{code(SYMBOL[stack.action])} <b>{text(stack.stack_name)}</b>: {stack.action}"
    if stack.region:
        title += f" in {code(stack.region)}"
    if stack.recreate:
        title += f" — recreate ({text(stack.recreate)})"
    if cost:
        title += f" · {text(cost)}"
    lines = ["<details" + (" open" if stack.action in ("replace", "delete", "invalid") else "") + ">",
             f"<summary>{title}</summary>", ""]  # fmt: skip
    lines += [f"- :x: {code(e)}" for e in stack.errors]
    lines += [f"- :warning: {code(w)}" for w in stack.warnings]
    if stack.over_budget:
        lines.append(f"- :money_with_wings: **over budget**: {text(stack.over_budget)}")
    if stack.image_tags:
        lines.append(f"- images: {code(_images(stack.image_tags))}")
    if stack.changes and stack.action != "invalid":
        diff = []
        for change in stack.changes:
            first, *rest = _change_lines(change)
            diff.append(
                ("-" if change.action == "remove" else "+" if change.action == "add" else "!") + " " + first
            )
            diff += [f"  {line.strip()}" for line in rest]
        # A fence longer than any run of backticks in the values: nothing inside can close it.
        fence = "`" * max(3, 1 + max((len(r) for line in diff for r in re.findall(r"`+", line)), default=0))
        lines += ["", f"{fence}diff", *(line.replace("\n", " ") for line in diff), fence]
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


def _plan_head(text: str) -> str:
    """A plan's part above its first stack section: title, summary, one line per environment."""
    cut = text.find("\n<details")
    return text if cut < 0 else text[: cut + 1]


def collect(plans: dict[str, str | None], limit: int = COMMENT_LIMIT) -> str:
    """One pull-request comment from each environment's markdown plan (None: that plan job wrote none).

    Every environment named in `plans` gets its heading and at least a line saying what it shows: its
    whole plan when everything fits; else its summary with a note that its sections were cut; and an
    environment with no plan says so. Nothing is dropped without a line about it, and the comment
    stays within `limit` bytes (GitHub refuses a longer one).
    """
    parts: list[tuple[str, str | None]] = []
    for environment, plan_text in plans.items():
        body = None if plan_text is None else "\n".join(
            line for line in plan_text.splitlines() if line.strip() != MARKER
        ).strip("\n")  # fmt: skip
        parts.append((environment, body))

    def heading(environment: str) -> str:
        return f"### {code(environment)}\n\n"

    def missing(environment: str) -> str:
        return (
            f"{heading(environment)}:warning: **No plan for {code(environment)}**: its plan job wrote "
            "none (it failed or was cancelled first); see the pull request's checks.\n\n"
        )

    def whole(environment: str, body: str) -> str:
        return f"{heading(environment)}{body}\n\n"

    def cut(environment: str, body: str) -> str:
        note = f"_Sections of {code(environment)} cut to fit GitHub's comment limit; run `make plan`._"
        return f"{heading(environment)}{_plan_head(body).rstrip()}\n\n{note}\n\n"

    def bare(environment: str, body: str) -> str:
        summary = next((line for line in body.splitlines() if line.startswith("**")), "")
        note = f"_The plan of {code(environment)} is too long for this comment; run `make plan`._"
        return f"{heading(environment)}{summary}\n\n{note}\n\n".replace("\n\n\n\n", "\n\n")

    top = f"{MARKER}\n"
    # Coarser renderings, environment by environment from the largest, until the comment fits.
    levels = [whole, cut, bare]
    chosen = {environment: 0 for environment, body in parts if body is not None}

    def render() -> str:
        out = top
        for environment, body in parts:
            out += missing(environment) if body is None else levels[chosen[environment]](environment, body)
        return out

    text = render()
    while _size(text) > limit:
        coarser = [e for e, level in chosen.items() if level < len(levels) - 1]
        if not coarser:
            break
        sizes = {e: _size(levels[chosen[e]](e, dict(parts)[e] or "")) for e in coarser}
        chosen[max(coarser, key=lambda e: sizes[e])] += 1
        text = render()
    return text
