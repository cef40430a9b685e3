"""The plan: what applying the working tree would do to each stack. One model, three renderings.

JSON shape (stable, version 1):

    {"version": 1, "against": "git:<sha>" | "aws", "hash": str,
     "summary": {"deployments", "create", "update", "replace", "delete", "no-change", "invalid"},
     "stacks": [{"environment", "name", "stack_name", "file", "region", "action", "recreate": str|null,
                 "errors": [str], "warnings": [str],
                 "hash": {"stack", "template", "parameters", "tags", "image_tags": str|null} | null,
                 "changes": [{"logical_id", "resource_type", "action", "replacement",
                              "properties": [{"path", "before", "after"}]}]}],
     "quotas": {"checked", "note", "exceeded", "warnings", "quotas": [...]} | null}

`quotas` is the quota preflight (tooling/quotas.py): checked against AWS for aws plans, not checked
(and saying so) for offline ones; a quota the plan would exceed fails the plan.

`hash` binds a deploy to the reviewed plan (`deploy --plan FILE`): per stack, SHA-256 of the template
as sent, of its parameters, of its ownership tags, and of the image tags the plan was made with
(null: the plan named none, so the deploy's --image-tag decides); the top-level hash covers every
stack's region, action and hash. `recreate` says why a stack that exists will be deleted and created.

`action` is create, update, replace (an update that replaces at least one resource), delete, no-change
or invalid; a change's `action` is add, modify or remove and its `replacement` true, false or conditional.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tooling.diff import ResourceChange, diff_templates
from tooling.secret_scan import find_secret
from tooling.snapshot import Snapshot, StackState

if TYPE_CHECKING:
    from tooling.quotas import Report

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
    monthly_after_range_usd: list[float] | None = None  # fallback types: cheapest and dearest
    over_budget: str | None = None
    base_unpriced: bool = False  # the base revision's code could not price it (older than pricing)
    file: str = ""  # the deployment file, relative to the repository root
    recreate: str | None = None  # why an existing stack is deleted and created again
    hash: dict[str, str | None] | None = None  # see the module docstring

    @property
    def priced(self) -> bool:
        return self.monthly_before_usd is not None or self.monthly_after_usd is not None


@dataclass
class Plan:
    against: str
    stacks: list[StackPlan]
    problems: list[str] = field(default_factory=list)
    quotas: Report | None = None

    @property
    def changed(self) -> bool:
        return any(s.action not in ("no-change",) for s in self.stacks)

    @property
    def failed(self) -> bool:
        return (
            bool(self.problems)
            or any(s.action == "invalid" for s in self.stacks)
            or bool(self.quotas and self.quotas.exceeded)
        )

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
            before, after = data.pop("monthly_before_usd"), data.pop("monthly_after_usd")
            spread = data.pop("monthly_after_range_usd")
            data["cost"] = {
                "monthly_before_usd": before,
                "monthly_after_usd": after,
                **({"monthly_after_range_usd": spread} if spread else {}),
                "monthly_delta_usd": round((after or 0.0) - (before or 0.0), 2),
            }
            for change in data["changes"]:
                for prop in change["properties"]:
                    prop["before"], prop["after"] = mask(prop["before"]), mask(prop["after"])
            stacks.append(data)
        before, after = self.monthly_totals()
        summary = {**self.summary(), "monthly_before_usd": before, "monthly_after_usd": after,
                   "monthly_delta_usd": round(after - before, 2)}  # fmt: skip
        return {"version": 1, "against": self.against, "hash": self.hash(), "summary": summary,
                "stacks": stacks, "quotas": self.quotas.to_json() if self.quotas else None}  # fmt: skip

    def hash(self) -> str:
        return whole_hash(
            [(s.stack_name, s.region, s.action, (s.hash or {}).get("stack") or "") for s in self.stacks]
        )


def _sha(data: object) -> str:
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def whole_hash(stacks: list[tuple[str, str, str, str]]) -> str:
    return _sha(sorted(stacks))


def stack_hash(
    text: str, tags: Mapping[str, str], image_tags: Mapping[str, str] | None
) -> dict[str, str | None]:
    """What a deploy of this stack applies, hashed part by part (so a refusal can say which part)."""
    template = json.loads(text)
    declared = template.get("Parameters", {})
    images = None
    if image_tags is not None:
        images = _sha({k: v for k, v in sorted(image_tags.items()) if k in declared})
    parts: dict[str, str | None] = {
        "template": _sha(template),
        # Parameters other than image tags are the template's defaults (in the template's hash) or
        # kept from the deployed stack: their names and defaults are what a plan can bind.
        "parameters": _sha(
            {k: v.get("Default") for k, v in sorted(declared.items()) if not k.endswith("ImageTag")}
        ),
        "tags": _sha(dict(sorted(tags.items()))),
        "image_tags": images,
    }
    parts["stack"] = _sha([parts["template"], parts["parameters"], parts["tags"], parts["image_tags"]])
    return parts


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


def offline(
    head: Snapshot, base: Snapshot, against: str, *, repository: str = "",
    image_tags: Mapping[str, str] | None = None,
) -> Plan:  # fmt: skip
    """Compare two snapshots resource by resource: what the working tree changes against `against`.

    A deployment whose region changed is a create in the new region and a delete in the old one:
    CloudFormation stacks are regional, nothing moves.
    """
    from tooling.ownership import ownership_tags  # noqa: PLC0415

    stacks: list[StackPlan] = []
    for stack_name in sorted(set(head.stacks) | set(base.stacks)):
        new, old = head.stacks.get(stack_name), base.stacks.get(stack_name)
        if new is not None and old is not None and old.valid and new.valid and old.region != new.region:
            stacks += [_compare(stack_name, None, new), _compare(stack_name, old, None)]
        else:
            stacks.append(_compare(stack_name, old, new))
    for plan in stacks:
        state = head.stacks.get(plan.stack_name)
        if plan.action != "delete" and state is not None and state.valid and state.text:
            plan.hash = stack_hash(state.text, ownership_tags(state, repository), image_tags)
    stacks.sort(key=lambda s: (ORDER[s.action], s.stack_name, s.region))
    return Plan(against, stacks, list(head.problems))


def _compare(stack_name: str, old: StackState | None, new: StackState | None) -> StackPlan:
    ref = new or old
    assert ref is not None
    plan = StackPlan(ref.environment, ref.name, stack_name, "no-change", region=ref.region, file=ref.file)
    plan.monthly_before_usd = old.monthly_usd if old is not None and old.valid else None
    plan.base_unpriced = old is not None and old.valid and old.monthly_usd is None
    if new is not None:
        plan.warnings = list(new.warnings)
        plan.monthly_after_usd = new.monthly_usd if new.valid else None
        plan.monthly_after_range_usd = new.monthly_range_usd if new.valid else None
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
