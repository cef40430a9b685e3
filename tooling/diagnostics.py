"""Diagnostics: what is wrong, where it is written, and what would be accepted.

Every problem deployctl finds in a user's file becomes one `Diagnostic`, printed the way compilers do
(`path:line:col: error: field.path: message`), so editors and GitHub annotations can jump to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Location:
    """Where a value is written: a file and a 1-based line and column."""

    file: Path
    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Diagnostic:
    location: Location
    field: str
    message: str
    code: str
    severity: Severity = Severity.ERROR
    hint: str = ""
    # The deployment file whose merged spec produced this, when the value came from a _defaults.yaml.
    via: Path | None = dataclasses.field(default=None, compare=False)

    def sort_key(self) -> tuple:
        return (str(self.location.file), self.location.line, self.location.col, self.field, self.message)


def display_path(path: Path) -> str:
    """A path as the user typed it: relative to the working directory when it is below it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def format_text(d: Diagnostic) -> str:
    loc = d.location
    where = f"{display_path(loc.file)}:{loc.line}:{loc.col}"
    subject = f"{d.field}: " if d.field else ""
    text = f"{where}: {d.severity}: {subject}{d.message}"
    if d.hint:
        text += f" ({d.hint})"
    if d.via is not None and d.via != loc.file:
        text += f" [merged into {display_path(d.via)}]"
    return f"{text} [{d.code}]"


def format_github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command, so the pull request shows the error on the line."""
    loc = d.location
    command = "error" if d.severity is Severity.ERROR else "warning"
    message = f"{d.field}: {d.message}" if d.field else d.message
    if d.hint:
        message += f" ({d.hint})"
    message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return (
        f"::{command} file={display_path(loc.file)},line={loc.line},col={loc.col},title={d.code}::{message}"
    )


def to_json(d: Diagnostic) -> dict:
    data = asdict(d)
    data["location"] = {"file": display_path(d.location.file), "line": d.location.line, "col": d.location.col}
    data["via"] = display_path(d.via) if d.via else None
    data["severity"] = str(d.severity)
    return data


def dump_json(diagnostics: Iterable[Diagnostic], files: int) -> str:
    items = [to_json(d) for d in diagnostics]
    errors = sum(1 for d in items if d["severity"] == "error")
    return json.dumps(
        {"files": files, "errors": errors, "warnings": len(items) - errors, "diagnostics": items}, indent=2
    )


def unique_sorted(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Drop repeats (a bad value in a _defaults.yaml shows once, not once per file that merges it)."""
    seen: dict[tuple, Diagnostic] = {}
    for d in diagnostics:
        seen.setdefault((d.location, d.field, d.message, d.severity), d)
    return sorted(seen.values(), key=Diagnostic.sort_key)
