"""Turning one merged YAML source into a `Deployment`, or into diagnostics that point at the YAML.

Pydantic checks each field and each section; the cross-section `rules.RULES` then run on every section
that is valid on its own, so a file with five mistakes in five places reports five errors at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from tooling import rules, spec
from tooling.diagnostics import Diagnostic, Location, Severity
from tooling.secret_scan import find_secret
from tooling.source import FieldPath, Source


@dataclass
class Validated:
    spec: spec.Deployment | None
    diagnostics: list[Diagnostic]


def dotted(path: FieldPath) -> str:
    """`('scaling', 'schedules', 0, 'cron')` -> `scaling.schedules[0].cron`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validate(source: Source, environment: str, file: Path) -> Validated:
    """Validate a merged source. `file` is the deployment file (values may come from a defaults file)."""
    out: list[Diagnostic] = []

    def report(path: FieldPath, message: str, code: str, hint: str = "", *, key: bool = False,
               severity: Severity = Severity.ERROR) -> None:  # fmt: skip
        loc = source.locate(path, key=key) or Location(file)
        via = file if loc.file != file else None
        out.append(Diagnostic(loc, dotted(path), message, code, severity, hint, via))

    if not isinstance(source.data, dict):
        report((), "a deployment file is a mapping of fields (name:, model:, engine:, …)", "SPEC001")
        return Validated(None, out)

    secret_paths = set()
    for path, value in _strings(source.data, ()):
        if kind := find_secret(value):
            secret_paths.add(path)
            report(
                path,
                f"this looks like {kind}; a key never goes in a deployment file",
                "SPEC100",
                "keep it in Secrets Manager and name the secret, as engine.provider_key_secret does",
            )

    deployment = None
    failed_sections: set[str] = set()
    try:
        deployment = spec.Deployment.model_validate(source.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path, missing, on_key = _data_path(source.data, error)
            failed_sections.add(str(error["loc"][0]) if error["loc"] else "")
            if any(path[: len(s)] == s for s in secret_paths):
                continue  # already reported without echoing the value
            message, hint = _describe(error, path)
            on_key = on_key or missing or error["type"] == "extra_forbidden"
            report(path, message, _code(error), hint, key=on_key)

    sections = _sections(source.data, failed_sections) if deployment is None else dict(deployment)
    for rule in rules.RULES:
        for finding in rule(rules.Sections(environment, sections)):
            path = _split(finding.field)
            severity = Severity.WARNING if finding.warning else Severity.ERROR
            report(path, finding.message, finding.code, finding.hint, severity=severity)

    if any(d.severity is Severity.ERROR for d in out):
        deployment = None
    elif deployment is not None and deployment.budget and deployment.budget.monthly_usd:
        from tooling import cost  # noqa: PLC0415 - the price table loads only for budgeted specs

        if message := cost.over_budget(cost.estimate(deployment, environment), deployment):
            report(
                ("budget", "monthly_usd"),
                message,
                OVER_BUDGET,
                "raise the budget, lower scaling.min, or pick a smaller instance; "
                "--fail-over-budget makes this an error",
                severity=Severity.WARNING,
            )
    return Validated(deployment, out)


OVER_BUDGET = "SPEC230"


def _strings(data: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, (*path, index))


@cache
def _adapter(name: str) -> TypeAdapter:
    info = spec.Deployment.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


def _sections(data: dict, failed: set[str]) -> dict[str, Any]:
    """Each top-level field that is valid by itself (defaults for the absent ones), for the rules."""
    values: dict[str, Any] = {}
    for name, info in spec.Deployment.model_fields.items():
        if name in failed:
            continue
        if name in data:
            values[name] = _adapter(name).validate_python(data[name])
        elif not info.is_required():
            values[name] = info.get_default(call_default_factory=True)
    return values


def _split(field: str) -> FieldPath:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        part = token.strip("[]")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


def _data_path(data: Any, error: dict) -> tuple[FieldPath, bool, bool]:
    """Map pydantic's `loc` onto the written data: (path, whether the last part is missing, on a key).

    `loc` carries union tags (`compute.sagemaker.spot`) and `[key]` markers that are not in the YAML;
    those steps are skipped. A validator's `field` context narrows a model-level error to one field.
    """
    loc = list(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(ctx.get("discriminator", "'type'").strip("'"))
    if ctx.get("field"):
        loc.extend(_split(ctx["field"]))
    path: list[str | int] = []
    current = data
    on_key = False
    for index, part in enumerate(loc):
        if part == "[key]":
            on_key = True
            continue
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and part < len(current)
        ):
            current = current[part]
            path.append(part)
        elif index == len(loc) - 1:
            path.append(part)
            return tuple(path), True, on_key
        # else: a union tag or validator name that pydantic adds to `loc`; it is not written in the YAML
    return tuple(path), False, on_key


def _code(error: dict) -> str:
    if code := (error.get("ctx") or {}).get("code"):
        return code  # one of ours with a code of its own (spec.fail)
    return {
        "missing": "SPEC002",
        "extra_forbidden": "SPEC003",
        "union_tag_invalid": "SPEC004",
        "literal_error": "SPEC004",
        "union_tag_not_found": "SPEC002",
    }.get(error["type"], "SPEC005")


def _describe(error: dict, path: FieldPath) -> tuple[str, str]:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if "message" in ctx:  # one of ours, already worded for users
        return ctx["message"], ctx.get("hint", "")
    if kind == "missing":
        return "required field is missing", _description(path)
    if kind == "union_tag_not_found":
        return "required field is missing", f"one of {_union_tags(error)}"
    if kind == "extra_forbidden":
        return _unknown_field(error)
    if kind == "union_tag_invalid":
        choices = _quoted(ctx["expected_tags"])
        return (
            f"'{ctx['tag']}' is not one of {', '.join(choices)}{spec.did_you_mean(ctx['tag'], choices)}",
            "",
        )
    if kind == "literal_error":
        choices = _quoted(ctx["expected"])
        shown = f"'{value}'" if isinstance(value, str) else repr(value)
        return f"{shown} is not one of {ctx['expected']}{spec.did_you_mean(value, choices)}", ""
    if kind in ("string_type",):
        hint = f'{value} was read as a number; quote it: "{value}"' if isinstance(value, int | float) else ""
        return "expected text", hint
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number", ""
    if kind in ("float_type", "float_parsing"):
        return "expected a number", ""
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false", ""
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping of fields", _description(path)
    if kind == "list_type":
        return "expected a list", _description(path)
    bounds = {
        "greater_than_equal": ("must be at least {ge}", "ge"),
        "less_than_equal": ("must be at most {le}", "le"),
        "greater_than": ("must be greater than {gt}", "gt"),
        "less_than": ("must be less than {lt}", "lt"),
        "too_short": ("needs at least {min_length} item(s)", "min_length"),
        "too_long": ("takes at most {max_length} item(s)", "max_length"),
        "string_too_short": ("must not be empty", "min_length"),
        "string_too_long": ("is longer than {max_length} characters", "max_length"),
    }
    if kind in bounds:
        return bounds[kind][0].format(**ctx), ""
    if kind == "value_error" and "email" in error["msg"]:
        return f"not a valid e-mail address: {ctx.get('reason', '')}".strip(": "), "e.g. team@example.com"
    return error["msg"].removeprefix("Value error, "), ""


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text) or [t.strip() for t in re.split(r",| or ", text) if t.strip()]


def _union_tags(error: dict) -> str:
    variants = _model_at(error["loc"])
    return ", ".join(variants) if isinstance(variants, dict) else ""


def _model_at(loc: tuple) -> Any:
    """The model class that `loc` points into (following union tags), or {tag: model} at a tagged union."""
    current: Any = spec.Deployment
    for part in loc:
        if isinstance(current, dict):  # tag -> model
            current = current.get(part)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return None
        current = _resolve(info.annotation)
    return current


def _resolve(annotation: Any) -> Any:
    """A field's model, or for a tagged union a {tag: model} dict; None for anything else."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _resolve(get_args(annotation)[0])
    if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        members = [m for m in (_resolve(a) for a in get_args(annotation)) if m is not None]
        models = [m for m in members if isinstance(m, type)]
        if len(models) > 1:
            return {_tag(m): m for m in models}
        return members[0] if members else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _tag(model: type[BaseModel]) -> str:
    for name in ("type", "service"):
        if name in model.model_fields:
            return get_args(model.model_fields[name].annotation)[0]
    return model.__name__


def _unknown_field(error: dict) -> tuple[str, str]:
    loc = error["loc"]
    name = loc[-1]
    model = _model_at(loc[:-1])
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return f"unknown field '{name}'", ""
    allowed = list(model.model_fields)
    # A field of a sibling variant (spot on sagemaker) is a mismatch of kind, not a typo.
    variants = _model_at(loc[:-2]) if len(loc) >= 2 else None
    if isinstance(variants, dict):
        owners = [tag for tag, m in variants.items() if name in m.model_fields]
        if owners:
            return f"'{name}' does not apply to {loc[-2]}", f"it applies to {', '.join(owners)}"
    suggestion = spec.did_you_mean(name, allowed)
    return f"unknown field '{name}'{suggestion}", f"accepted: {', '.join(allowed)}"


def _description(path: FieldPath) -> str:
    names = [p for p in path if isinstance(p, str)]
    model = _model_at(tuple(names[:-1])) if names else None
    if isinstance(model, type) and issubclass(model, BaseModel) and names and names[-1] in model.model_fields:
        return model.model_fields[names[-1]].description or ""
    return ""
