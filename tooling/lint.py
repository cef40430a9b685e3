"""cfn-lint as a library: its rules and ours are built once per process, then every template is checked
in memory.

Our rules (tooling/cfn_rules/, E9xxx/W9xxx) are appended the way cfn-lint's `--append-rules` appends a
module: the config names each rule module and cfn-lint's Runner instantiates them next to its own.
Findings come back as `Diagnostic`s pointing at the rendered template's line and column, so they print
the same way as spec errors do.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from tooling.cfn_rules import MODULES
from tooling.diagnostics import Diagnostic, Location, Severity

# Informational findings (I...) are advice; errors and warnings fail a render.
_LEVELS = {"E": Severity.ERROR, "W": Severity.WARNING}


@cache
def _runner(region: str, project_only: bool = False) -> tuple[Any, Any]:
    from cfnlint.config import ConfigMixIn  # noqa: PLC0415 - importing cfn-lint costs ~0.5 s; only linting pays
    from cfnlint.rules import Rules  # noqa: PLC0415
    from cfnlint.runner import Runner  # noqa: PLC0415

    config = ConfigMixIn(regions=[region], append_rules=list(MODULES))
    if not project_only:
        return config, Runner(config).rules
    rules = Rules()
    for module in MODULES:
        rules.update(Rules.create_from_module(module))
    return config, rules


def project_rules() -> list[Any]:
    """Our rules, as the instances cfn-lint runs (one per module)."""
    _, rules = _runner("us-east-1", True)
    return list(rules.values())


def lint(text: str, region: str, file: Path, *, project_only: bool = False) -> list[Diagnostic]:
    """cfn-lint's errors and warnings and ours for one template, as diagnostics located in `file`
    (`project_only`: ours alone)."""
    from cfnlint.decode.decode import decode_str  # noqa: PLC0415
    from cfnlint.runner import run_template_by_data  # noqa: PLC0415

    config, rules = _runner(region, project_only)
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
