"""cfn-lint as a library: its rules are built once per process, then every template is checked in memory.

Findings come back as `Diagnostic`s pointing at the rendered template's line and column, so they print
the same way as spec errors do.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tooling.diagnostics import Diagnostic, Location, Severity

# Informational findings (I...) are advice; errors and warnings fail a render.
_LEVELS = {"E": Severity.ERROR, "W": Severity.WARNING}


@cache
def _runner(region: str):
    from cfnlint.config import ConfigMixIn  # noqa: PLC0415 - importing cfn-lint costs ~0.5 s; only linting pays
    from cfnlint.runner import Runner  # noqa: PLC0415

    config = ConfigMixIn(regions=[region])
    return config, Runner(config).rules


def lint(text: str, region: str, file: Path) -> list[Diagnostic]:
    """cfn-lint's errors and warnings for one template, as diagnostics located in `file`."""
    from cfnlint.decode.decode import decode_str  # noqa: PLC0415
    from cfnlint.runner import run_template_by_data  # noqa: PLC0415

    config, rules = _runner(region)
    template, errors = decode_str(text)
    matches = errors if errors or template is None else run_template_by_data(template, config, rules)
    found = []
    for match in matches:
        severity = _LEVELS.get(match.rule.id[0])
        if severity is None:
            continue
        path = "/".join(str(p) for p in getattr(match, "path", []) or [])
        found.append(
            Diagnostic(
                Location(file, match.linenumber, match.columnnumber),
                path,
                match.message,
                match.rule.id,
                severity,
            )
        )
    return found
