"""What an IAM role in the template is allowed to do: its inline policies and the policies attached to it."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, resource, statements, target


def role_statements(cfn: Template, role: str) -> list[dict[str, Any]]:
    found = []
    for policy in props(resource(cfn, role, "AWS::IAM::Role")).get("Policies", []) or []:
        if isinstance(policy, dict):
            found += statements(policy.get("PolicyDocument"))
    managed = {target(arn) for arn in props(resource(cfn, role)).get("ManagedPolicyArns", []) or []}
    for name, res in cfn.get_resources(["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"]).items():
        roles = {target(r) for r in as_list(props(res).get("Roles"))}
        if role in roles or name in managed:
            found += statements(props(res).get("PolicyDocument"))
    return found


def allows(found: list[dict[str, Any]], action: str) -> bool:
    """Whether an Allow statement names `action` (IAM action names match case-insensitively, with * and ?)."""
    return any(
        s.get("Effect") == "Allow"
        and any(
            isinstance(a, str) and fnmatchcase(action.lower(), a.lower()) for a in as_list(s.get("Action"))
        )
        for s in found
    )
