"""E9045: the vLLM image parameter admits only images of the vLLM version the stack was built for."""

from __future__ import annotations

import re
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

PARAMETER = "VllmImageTag"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _other(version: str) -> str:
    """A different release of the same shape: the minor number moved by one."""
    major, minor, rest = [*version.split(".", 2), "0", "0"][:3]
    return f"{major}.{int(minor) + 1 if minor.isdigit() else 0}.{rest}"


def problem(pattern: object, version: str) -> str | None:
    """Why `pattern` lets through something other than `<version>-<commit>` (None: it does not)."""
    if not isinstance(pattern, str):
        return "it has no AllowedPattern, so any tag (another version's image) is accepted"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"its AllowedPattern is not a regular expression ({exc})"
    wanted = f"{version}-{COMMIT}"
    if not compiled.fullmatch(wanted):
        return f"its AllowedPattern {pattern} refuses {version}'s own tag {wanted}"
    others = (
        f"{_other(version)}-{COMMIT}",
        f"{version.replace('.', 'x')}-{COMMIT}",  # an unescaped '.' admits any character
        COMMIT,
        f"{version}-latest",
        f"{version}-{COMMIT[:12]}",
    )
    for other in others:
        if compiled.fullmatch(other):
            return f"its AllowedPattern {pattern} also admits {other}"
    return None


class VllmImageVersion(CloudFormationLintRule):
    id = "E9045"
    shortdesc = "VllmImageTag admits only the stack's vLLM version"
    description = (
        "CloudFormation checks a String parameter's value against its AllowedPattern before it creates or "
        "updates anything, and refuses a value that does not match. vLLM images are tagged "
        "<version>-<commit>, so a template that declares VllmImageTag must set Metadata.deployctl."
        "vllm_version and an AllowedPattern that admits that version's tags (a full 40-hex commit) and "
        "nothing else: an image of another vLLM version must never start on this stack."
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html"
    )
    tags: ClassVar[list[str]] = ["parameters", "images", "vllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        parameter = (cfn.template.get("Parameters") or {}).get(PARAMETER)
        if not isinstance(parameter, dict):
            return []
        metadata = (cfn.template.get("Metadata") or {}).get("deployctl") or {}
        version = metadata.get("vllm_version") if isinstance(metadata, dict) else None
        if not isinstance(version, str) or not version:
            return [
                RuleMatch(
                    ["Parameters", PARAMETER],
                    f"{PARAMETER}: the template sets no Metadata.deployctl.vllm_version, so nothing says "
                    "which vLLM version's images it may run",
                )
            ]
        if why := problem(parameter.get("AllowedPattern"), version):
            return [
                RuleMatch(
                    ["Parameters", PARAMETER, "AllowedPattern"],
                    f"{PARAMETER}: {why}; admit only ^{re.escape(version)}-[0-9a-f]{{40}}$ (vLLM {version})",
                )
            ]
        return []
