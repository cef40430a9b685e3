"""Resource-by-resource, property-by-property differences between two CloudFormation templates.

Used for offline plans (against a git revision) where no change set can be asked for. Replacement is
predicted from the resource schemas cfn-lint ships: a change to a `createOnlyProperties` path makes
CloudFormation replace the resource, as a change set would report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

Action = Literal["add", "modify", "remove"]
Replacement = Literal["true", "false", "conditional"]
_MISSING = object()
_INTRINSICS = (
    "Ref",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::Select",
    "Fn::ImportValue",
    "Fn::If",
    "Fn::GetAZs",
)


@dataclass(frozen=True)
class PropertyChange:
    path: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class ResourceChange:
    logical_id: str
    resource_type: str
    action: Action
    replacement: Replacement = "false"
    properties: list[PropertyChange] = field(default_factory=list)


@cache
def create_only_paths(resource_type: str, region: str = "us-east-1") -> tuple[tuple[str, ...], ...]:
    """The property paths whose change replaces a resource of `resource_type`."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER  # noqa: PLC0415 - loads schemas lazily

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except Exception:
        return ()
    paths = []
    for pointer in schema.get("createOnlyProperties", []):
        parts = pointer.removeprefix("/properties/").split("/")
        paths.append(tuple(p for p in parts if p != "*"))
    return tuple(paths)


def diff_templates(
    before: dict[str, Any] | None, after: dict[str, Any] | None, region: str
) -> list[ResourceChange]:
    """Changes that turn `before` into `after`, resources sorted by logical id (outputs last)."""
    old = (before or {}).get("Resources", {})
    new = (after or {}).get("Resources", {})
    changes: list[ResourceChange] = []
    for logical in sorted(set(old) | set(new)):
        a, b = old.get(logical), new.get(logical)
        if a is None:
            changes.append(ResourceChange(logical, b["Type"], "add", "false", _leaves("Properties", None, b)))
        elif b is None:
            changes.append(
                ResourceChange(logical, a["Type"], "remove", "false", _leaves("Properties", a, None))
            )
        elif a["Type"] != b["Type"]:
            changes.append(
                ResourceChange(
                    logical, b["Type"], "modify", "true", [PropertyChange("Type", a["Type"], b["Type"])]
                )
            )
        elif a != b:
            props = _diff(a, b, "")
            changes.append(
                ResourceChange(logical, b["Type"], "modify", _replacement(b["Type"], props, region), props)
            )
    old_out, new_out = (before or {}).get("Outputs", {}), (after or {}).get("Outputs", {})
    for name in sorted(set(old_out) | set(new_out)):
        a, b = old_out.get(name), new_out.get(name)
        if a != b:
            action: Action = "add" if a is None else "remove" if b is None else "modify"
            changes.append(ResourceChange(f"Outputs.{name}", "Output", action, "false", _diff(a, b, "Value")))
    return changes


def _leaves(key: str, a: dict | None, b: dict | None) -> list[PropertyChange]:
    source = (b or a or {}).get(key)
    if source is None:
        return []
    return _diff(a.get(key) if a else _MISSING, b.get(key) if b else _MISSING, key)


def _diff(a: Any, b: Any, path: str) -> list[PropertyChange]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict) and not (_is_intrinsic(a) or _is_intrinsic(b)):
        out: list[PropertyChange] = []
        for key in sorted(set(a) | set(b)):
            child = f"{path}.{key}" if path else key
            out += _diff(a.get(key, _MISSING), b.get(key, _MISSING), child)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(x, y, f"{path}[{index}]")
        return out
    return [PropertyChange(path, None if a is _MISSING else a, None if b is _MISSING else b)]


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _INTRINSICS


def _contains_intrinsic(value: Any) -> bool:
    if _is_intrinsic(value):
        return True
    if isinstance(value, dict):
        return any(_contains_intrinsic(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_intrinsic(v) for v in value)
    return False


def _replacement(resource_type: str, props: list[PropertyChange], region: str) -> Replacement:
    create_only = create_only_paths(resource_type, region)
    verdict: Replacement = "false"
    for change in props:
        if not change.path.startswith("Properties."):
            continue
        parts = tuple(p.split("[")[0] for p in change.path.removeprefix("Properties.").split("."))
        if any(parts[: len(c)] == c for c in create_only):
            # A value only known at deploy time (a Ref, a GetAtt) may or may not differ in the end.
            if _contains_intrinsic(change.before) or _contains_intrinsic(change.after):
                verdict = "conditional"
            else:
                return "true"
    return verdict
