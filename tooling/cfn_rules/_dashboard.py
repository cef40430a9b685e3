"""Reading a CloudWatch dashboard's body out of a template: the JSON, its widgets and its metrics.

DashboardBody is a string, in our templates an `Fn::Sub` (or an `Fn::Join`) whose variables name the
stack's resources. The body is read with each variable left as a marker, so the JSON can be parsed and
every dimension value traced back to the Ref, GetAtt or pseudo parameter it is.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cfnlint.template import Template

from tooling.cfn_rules._template import props

TYPE = "AWS::CloudWatch::Dashboard"
OPEN, CLOSE = "\ue000", "\ue001"  # private-use characters: valid in JSON strings, never in ours
_VARIABLE = re.compile(r"\$\{(?!!)([^}]*)\}")
_MARKER = re.compile(OPEN + "([^" + CLOSE + "]*)" + CLOSE)
PSEUDO = (
    "AWS::StackName",
    "AWS::Region",
    "AWS::AccountId",
    "AWS::Partition",
    "AWS::URLSuffix",
    "AWS::StackId",
)


@dataclass(frozen=True)
class Source:
    """What a `${...}` stands for: a pseudo parameter, or a resource's Ref or GetAtt attribute."""

    kind: str  # "pseudo", "ref", "getatt" or "unknown"
    name: str  # the pseudo parameter or the logical id
    attribute: str = ""


@dataclass
class MetricRow:
    widget: int
    row: int
    namespace: str
    name: str
    dimensions: dict[str, Any]  # value: literal text, or a Source for a value that is one variable
    options: dict[str, Any]


@dataclass
class Body:
    logical_id: str
    path: list[str | int]
    text: str | None  # the body with markers, None when it is no string, Sub or Join we can read
    variables: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    error: str = ""

    def source(self, value: Any) -> Source | str | Any:
        """A value of the body: a Source when it is exactly one variable, else the value as it is."""
        if not isinstance(value, str):
            return value
        found = _MARKER.fullmatch(value)
        if not found:
            return _MARKER.sub(lambda m: "${" + m.group(1) + "}", value)
        return resolve(found.group(1), self.variables)

    def widgets(self) -> list[dict[str, Any]]:
        if not isinstance(self.data, dict) or not isinstance(self.data.get("widgets"), list):
            return []
        return [w if isinstance(w, dict) else {} for w in self.data["widgets"]]

    def metric_widgets(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, widget in enumerate(self.widgets()):
            properties = widget.get("properties")
            if widget.get("type") == "metric" and isinstance(properties, dict):
                yield index, properties

    def metrics(self) -> Iterator[MetricRow]:
        """Every metric (not expression) of every metric widget, with `.` and `...` filled in."""
        for index, properties in self.metric_widgets():
            previous: list[Any] = []
            for number, raw in enumerate(properties.get("metrics") or []):
                row = expand(raw, previous) if isinstance(raw, list) else None
                if row is None:
                    continue
                previous = row
                parts = [p for p in row if not isinstance(p, dict)]
                options = next((p for p in row if isinstance(p, dict)), {})
                if len(parts) < 2 or "expression" in options:
                    continue
                dims = {
                    str(self.source(parts[i])): self.source(parts[i + 1]) for i in range(2, len(parts) - 1, 2)
                }
                yield MetricRow(index, number, str(parts[0]), str(parts[1]), dims, options)


def expand(row: list[Any], previous: list[Any]) -> list[Any] | None:
    """A metrics-array row with the shorthand of the previous row filled in: `.` repeats the item at
    that position, `...` the rest of the previous row's metric (before its options)."""
    out: list[Any] = []
    before = [p for p in previous if not isinstance(p, dict)]
    for position, item in enumerate(row):
        if item == "...":
            out += before[len(out) :]
        elif item == "." and position < len(before):
            out.append(before[position])
        else:
            out.append(item)
    return out


def resolve(name: str, variables: dict[str, Any]) -> Source:
    if name in variables:
        value = variables[name]
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                return Source("pseudo", arg) if arg in PSEUDO else Source("ref", arg)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                if len(parts) == 2 and all(isinstance(p, str) for p in parts):
                    return Source("getatt", parts[0], parts[1])
        return Source("unknown", name)
    if name in PSEUDO:
        return Source("pseudo", name)
    logical, _, attribute = name.partition(".")
    return Source("getatt", logical, attribute) if attribute else Source("ref", logical)


def flatten(value: Any) -> tuple[str, dict[str, Any]] | None:
    """(text with `${Var}`, variables) of a string, `Fn::Sub` or `Fn::Join`; None for anything else."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, arg),) = value.items()
    if key == "Fn::Sub":
        if isinstance(arg, str):
            return arg, {}
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            return arg[0], dict(arg[1])
        return None
    if key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        pieces, variables = [], {}
        for index, part in enumerate(arg[1] if isinstance(arg[1], list) else []):
            if isinstance(part, str):
                # Join text is literal: a `${` in it is no variable.
                pieces.append(part.replace("${", "${!"))
            else:
                name = f"Join{index}"
                variables[name] = part
                pieces.append("${" + name + "}")
        return arg[0].join(pieces), variables
    return None


def bodies(cfn: Template) -> Iterator[Body]:
    for logical_id, res in cfn.get_resources(TYPE).items():
        path: list[str | int] = ["Resources", logical_id, "Properties", "DashboardBody"]
        flat = flatten(props(res).get("DashboardBody"))
        if flat is None:
            yield Body(logical_id, path, None, error="DashboardBody is no string, Fn::Sub or Fn::Join")
            continue
        text, variables = flat
        marked = _VARIABLE.sub(lambda m: OPEN + m.group(1) + CLOSE, text).replace("${!", "${")
        body = Body(logical_id, path, marked, variables)
        try:
            body.data = json.loads(marked)
        except ValueError as exc:
            body.error = f"DashboardBody is not valid JSON ({exc})"
        yield body
