"""A release report (`deployctl release --format json`) as Markdown, for $GITHUB_STEP_SUMMARY or a comment.

It reads the JSON alone, so the job that renders it needs no AWS credentials and no checkout.
"""

from __future__ import annotations

from typing import Any

HEADLINES = {
    "released": "✅ released",
    "unchanged": "✅ unchanged (every stack already ran this)",
    "superseded": "⏭️ superseded: a newer release is recorded; nothing changed",
    "refused": "⛔ refused: nothing changed",
    "rolled-back": "↩️ failed and rolled back",
    "rollback-failed": "❌ failed, and the rollback failed too",
    "failed": "❌ failed",
}
EMPTY = "### Release: no report (the release stopped before it could write one; the job's log says why)"
MARKS = {"ok": "✅", "failed": "❌", "refused": "⛔", "skipped": "➖"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    env, commit = report.get("environment", "?"), str(report.get("commit", ""))
    outcome = str(report.get("outcome", ""))
    lines = [f"### Release of `{env}` at `{commit[:12] or '?'}`: {HEADLINES.get(outcome, outcome)}", ""]
    if report.get("previous"):
        lines.append(f"Previous release: `{str(report['previous'])[:12]}`.")
    if report.get("record"):
        lines.append(f"Record: `{report['record']}`.")
    lines += ["", "| step | result | detail |", "|---|---|---|"]
    for step in report.get("steps", []):
        mark = MARKS.get(step.get("outcome", ""), "")
        lines.append(
            f"| {step.get('name')} | {mark} {step.get('outcome')} | {_cell(step.get('detail', ''))} |"
        )
    stacks = report.get("stacks", [])
    if stacks:
        lines += ["", "| stack | region | deploy | smoke | rollback | images |", "|---|---|---|---|---|---|"]
        for stack in stacks:
            smoke = stack.get("smoke")
            shown = "" if smoke is None else ("✅" if smoke.get("ok") else "❌")
            tags = ", ".join(f"{k}={str(v)[:20]}" for k, v in sorted(stack.get("image_tags", {}).items()))
            lines.append(
                f"| {stack['stack_name']} | {stack.get('region', '')} | {stack.get('deploy') or '—'} "
                f"| {shown} "
                f"| {stack.get('rollback', '')} | {_cell(tags)} |"
            )
    problems = []
    for stack in stacks:
        for reason in stack.get("reasons", []):
            problems.append(f"- `{stack['stack_name']}`: {_cell(reason)}")
        for reason in stack.get("rollback_reasons", []):
            problems.append(f"- `{stack['stack_name']}` (rollback): {_cell(reason)}")
        smoke = stack.get("smoke") or {}
        if smoke.get("error"):
            problems.append(f"- `{stack['stack_name']}` (smoke): {_cell(smoke['error'])}")
        for check in smoke.get("checks", []):
            if not check.get("ok"):
                problems.append(
                    f"- `{stack['stack_name']}` smoke {check.get('name')}: {_cell(check.get('detail', ''))}"
                )
    if problems:
        lines += ["", "<details><summary>Details</summary>", "", *problems, "", "</details>"]
    return "\n".join(lines) + "\n"
