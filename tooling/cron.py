"""AWS cron expressions, as EventBridge and Application Auto Scaling scheduled actions accept them.

Six fields: minutes hours day-of-month month day-of-week year. Unlike Unix cron, one of day-of-month and
day-of-week must be `?`, days of the week run 1-7 from Sunday, and `L`, `W` and `#` are allowed where
AWS allows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}  # noqa: SIM905
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}  # noqa: SIM905


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    extra: str  # the special characters this field allows besides , - * /


_FIELDS = (
    _Field("minutes", 0, 59, {}, ""),
    _Field("hours", 0, 23, {}, ""),
    _Field("day-of-month", 1, 31, {}, "?LW"),
    _Field("month", 1, 12, _MONTHS, ""),
    _Field("day-of-week", 1, 7, _DAYS, "?L#"),
    _Field("year", 1970, 2199, {}, ""),
)

_WRAPPED = re.compile(r"^cron\((.*)\)$")


def normalise(expression: str) -> str:
    """`cron(0 20 ? * MON-FRI *)` and `0 20 ? * MON-FRI *` are the same schedule."""
    expression = expression.strip()
    if match := _WRAPPED.match(expression):
        expression = match.group(1).strip()
    return " ".join(expression.split())


def problem(expression: str) -> str | None:
    """What is wrong with an AWS cron expression, or None when AWS accepts it."""
    parts = normalise(expression).split(" ")
    if len(parts) != 6:
        fields = "minutes hours day-of-month month day-of-week year"
        return f"an AWS cron expression has 6 fields ({fields}), not {len(parts)}"
    for text, spec in zip(parts, _FIELDS, strict=True):
        if error := _field_problem(text, spec):
            return f"{spec.name} field '{text}': {error}"
    dom, dow = parts[2], parts[4]
    if (dom == "?") == (dow == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


def _value(token: str, spec: _Field) -> int | None:
    if token.isdigit():
        number = int(token)
        return number if spec.low <= number <= spec.high else None
    return spec.names.get(token.upper())


def _field_problem(text: str, spec: _Field) -> str | None:
    accepted = f"{spec.low}-{spec.high}" + (" or names" if spec.names else "")
    if text == "?":
        return None if "?" in spec.extra else "'?' is only allowed in day-of-month or day-of-week"
    for item in text.split(","):
        if not item:
            return "empty list item"
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return f"step '{step}' must be a positive number"
        if base == "*":
            continue
        if "L" in spec.extra and base in ("L", "LW"):
            if base == "LW" and "W" not in spec.extra:
                return "'LW' is only allowed in day-of-month"
            continue
        if "W" in spec.extra and base.endswith("W"):
            if _value(base[:-1], spec) is None:
                return f"'{base}': W follows a day {accepted}"
            continue
        if "#" in spec.extra and "#" in base:
            day, _, nth = base.partition("#")
            if _value(day, spec) is None or not (nth.isdigit() and 1 <= int(nth) <= 5):
                return f"'{base}': use day#n with a day {accepted} and n 1-5"
            continue
        if spec.name == "day-of-week" and base.endswith("L") and len(base) > 1:
            if _value(base[:-1], spec) is None:
                return f"'{base}': L follows a day {accepted}"
            continue
        low, dash, high = base.partition("-")
        if _value(low, spec) is None or (dash and _value(high, spec) is None):
            return f"'{base}' is not in {accepted}"
    return None
