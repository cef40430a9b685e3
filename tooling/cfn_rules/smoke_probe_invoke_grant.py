"""E9070: the smoke probe carries what its invokers' IAM grants match: the probe tags, the environment
tag, and a name CloudFormation generates from the stack name."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates.smoke_probe import ROLE_TAG, ROLE_TAG_VALUE
from tooling.cfn_rules._probe import probe
from tooling.cfn_rules._template import props

ENVIRONMENT_TAG = "deployctl:environment"


def _tags(resource: dict[str, Any]) -> dict[str, Any]:
    found = props(resource).get("Tags")
    if not isinstance(found, list):
        return {}
    return {t["Key"]: t.get("Value") for t in found if isinstance(t, dict) and isinstance(t.get("Key"), str)}


class SmokeProbeInvokeGrant(CloudFormationLintRule):
    id = "E9070"
    shortdesc = "The smoke probe is one its invokers' IAM grants match"
    description = (
        "The smoke, deploy and rotation roles (templates/bootstrap.py) may invoke and wait on a function "
        "only when its name is `<env>-*` and it carries the tags deployctl:role=smoke-probe and "
        "deployctl:environment=<env>, which Lambda evaluates as aws:ResourceTag for InvokeFunction and "
        "GetFunction. A probe without them, or with a FunctionName of its own (CloudFormation's generated "
        "name starts with the stack's), is refused to every smoke test: AccessDenied on Invoke."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/attribute-based-access-control.html"
    tags: ClassVar[list[str]] = ["resources", "lambda", "iam", "smoke"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        found = probe(cfn)
        if found is None:
            return []
        name, function = found
        path = ["Resources", name, "Properties"]
        matches = []
        if "FunctionName" in props(function):
            matches.append(
                RuleMatch(
                    [*path, "FunctionName"],
                    f"{name} sets FunctionName: the invoke grants match `<env>-*`, the name CloudFormation "
                    "generates from the stack name; leave it unset",
                )
            )
        tags = _tags(function)
        if tags.get(ROLE_TAG) != ROLE_TAG_VALUE:
            matches.append(
                RuleMatch(
                    [*path, "Tags"],
                    f"{name} must carry the tag {ROLE_TAG}={ROLE_TAG_VALUE}: the smoke, deploy and rotation "
                    "roles invoke only functions with it (aws:ResourceTag)",
                )
            )
        environment = tags.get(ENVIRONMENT_TAG)
        others = {
            str(value)
            for other, res in cfn.get_resources().items()
            if other != name and isinstance(value := _tags(res).get(ENVIRONMENT_TAG), str)
        }
        if not isinstance(environment, str) or not environment:
            matches.append(
                RuleMatch(
                    [*path, "Tags"],
                    f"{name} must carry the tag {ENVIRONMENT_TAG} (a literal environment name): the roles "
                    "invoke only their own environment's probes (aws:ResourceTag)",
                )
            )
        elif others and others != {environment}:
            matches.append(
                RuleMatch(
                    [*path, "Tags"],
                    f"{name}'s {ENVIRONMENT_TAG} tag is {environment!r}, the stack's other resources say "
                    f"{', '.join(sorted(others))}: only that environment's roles could invoke it",
                )
            )
        return matches
