"""The plan: what applying the working tree would do to each stack. One model, three renderings.

JSON shape (stable, version 1):

    {"version": 1, "against": "git:<sha>" | "aws",
     "summary": {"deployments", "create", "update", "replace", "delete", "no-change", "invalid"},
     "stacks": [{"environment", "name", "stack_name", "action", "errors": [str], "warnings": [str],
                 "changes": [{"logical_id", "resource_type", "action", "replacement",
                              "properties": [{"path", "before", "after"}]}]}]}

`action` is create, update, replace (an update that replaces at least one resource), delete, no-change
or invalid; a change's `action` is add, modify or remove and its `replacement` true, false or conditional.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tooling.diff import ResourceChange, diff_templates
from tooling.secret_scan import find_secret
from tooling.snapshot import Snapshot, StackState

StackAction = Literal["create", "update", "replace", "delete", "no-change", "invalid"]
ORDER: dict[str, int] = {"replace": 0, "delete": 1, "invalid": 2, "create": 3, "update": 4, "no-change": 5}
MASK = "****"


@dataclass
class StackPlan:
    environment: str
    name: str
    stack_name: str
    action: StackAction
    changes: list[ResourceChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    region: str = ""
    monthly_before_usd: float | None = None  # estimates at minimum scale; None: no such stack
    monthly_after_usd: float | None = None
    over_budget: str | None = None
    base_unpriced: bool = False  # the base revision's code could not price it (older than pricing)

    @property
    def priced(self) -> bool:
        return self.monthly_before_usd is not None or self.monthly_after_usd is not None


@dataclass
class Plan:
    against: str
    stacks: list[StackPlan]
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.action not in ("no-change",) for s in self.stacks)

    @property
    def failed(self) -> bool:
        return bool(self.problems) or any(s.action == "invalid" for s in self.stacks)

    def summary(self) -> dict[str, int]:
        counts = {action: 0 for action in ("create", "update", "replace", "delete", "no-change", "invalid")}
        for stack in self.stacks:
            counts[stack.action] += 1
        return {"deployments": len(self.stacks), **counts}

    def monthly_totals(self) -> tuple[float, float]:
        before = sum(s.monthly_before_usd or 0.0 for s in self.stacks if s.action != "invalid")
        after = sum(s.monthly_after_usd or 0.0 for s in self.stacks if s.action != "invalid")
        return round(before, 2), round(after, 2)

    def to_json(self) -> dict[str, Any]:
        stacks = []
        for stack in self.stacks:
            data = asdict(stack)
            data.pop("region")
            before, after = data.pop("monthly_before_usd"), data.pop("monthly_after_usd")
            data["cost"] = {
                "monthly_before_usd": before,
                "monthly_after_usd": after,
                "monthly_delta_usd": round((after or 0.0) - (before or 0.0), 2),
            }
            for change in data["changes"]:
                for prop in change["properties"]:
                    prop["before"], prop["after"] = mask(prop["before"]), mask(prop["after"])
            stacks.append(data)
        before, after = self.monthly_totals()
        summary = {**self.summary(), "monthly_before_usd": before, "monthly_after_usd": after,
                   "monthly_delta_usd": round(after - before, 2)}  # fmt: skip
        return {"version": 1, "against": self.against, "summary": summary, "stacks": stacks}


def mask(value: Any) -> Any:
    """Anything shaped like a credential is shown as ****, wherever it sits in a value."""
    if isinstance(value, str):
        return MASK if find_secret(value) else value
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def stack_action(changes: list[ResourceChange]) -> StackAction:
    if not changes:
        return "no-change"
    return "replace" if any(c.replacement == "true" for c in changes) else "update"


def offline(head: Snapshot, base: Snapshot, against: str) -> Plan:
    """Compare two snapshots resource by resource: what the working tree changes against `against`."""
    stacks: list[StackPlan] = []
    for stack_name in sorted(set(head.stacks) | set(base.stacks)):
        new, old = head.stacks.get(stack_name), base.stacks.get(stack_name)
        stacks.append(_compare(stack_name, old, new))
    stacks.sort(key=lambda s: (ORDER[s.action], s.stack_name))
    return Plan(against, stacks, list(head.problems))


def _compare(stack_name: str, old: StackState | None, new: StackState | None) -> StackPlan:
    ref = new or old
    assert ref is not None
    plan = StackPlan(ref.environment, ref.name, stack_name, "no-change", region=ref.region)
    plan.monthly_before_usd = old.monthly_usd if old is not None and old.valid else None
    plan.base_unpriced = old is not None and old.valid and old.monthly_usd is None
    if new is not None:
        plan.warnings = list(new.warnings)
        plan.monthly_after_usd = new.monthly_usd if new.valid else None
        plan.over_budget = new.over_budget
    if new is not None and not new.valid:
        plan.action, plan.errors = "invalid", list(new.errors)
        return plan
    before = json.loads(old.text) if old is not None and old.valid and old.text else None
    after = json.loads(new.text) if new is not None and new.text else None
    if after is None:
        plan.action = "delete"
        plan.changes = diff_templates(before, None, ref.region)
        return plan
    plan.changes = diff_templates(before, after, ref.region)
    plan.action = "create" if before is None else stack_action(plan.changes)
    return plan
