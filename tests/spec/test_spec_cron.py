from __future__ import annotations

import pytest

from tooling import cron


@pytest.mark.parametrize(
    "expression",
    [
        "0 20 ? * MON-FRI *",
        "cron(0 7 ? * MON-FRI *)",
        "*/15 * * * ? *",
        "0 0 L * ? *",
        "0 9 15W * ? 2027",
        "0 12 ? JAN,JUL 2#1 *",
        "30 6 ? * 6L 2026-2030",
        "0 0 1 1/3 ? *",
    ],
)
def test_accepted(expression: str) -> None:
    assert cron.problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 20 * * MON-FRI", "6 fields"),
        ("0 20 * * MON-FRI *", "exactly one of day-of-month and day-of-week"),
        ("0 20 ? * ? *", "exactly one of day-of-month and day-of-week"),
        ("60 20 ? * MON *", "minutes field '60'"),
        ("0 24 ? * MON *", "hours field '24'"),
        ("0 0 32 * ? *", "day-of-month field '32'"),
        ("0 0 ? FOO MON *", "month field 'FOO'"),
        ("0 0 ? * MON#6 *", "day-of-week field 'MON#6'"),
        ("0 0 ? * MON 1969", "year field '1969'"),
        ("0/0 0 ? * MON *", "step '0'"),
        ("0 0 L ? * *", "'?' is only allowed"),
        ("0,,5 0 ? * MON *", "empty list item"),
    ],
)
def test_refused(expression: str, fragment: str) -> None:
    problem = cron.problem(expression)
    assert problem is not None and fragment in problem, problem


def test_normalise() -> None:
    assert cron.normalise(" cron( 0  20 ? * MON-FRI * ) ") == "0 20 ? * MON-FRI *"
