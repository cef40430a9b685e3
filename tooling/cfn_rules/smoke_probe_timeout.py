"""E9052: the smoke probe's Timeout leaves every check its request timeout and the answer its margin."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from templates.runtime.smoke_probe import CHECKS, MARGIN_SECONDS, TIMEOUT_VARIABLE
from tooling.cfn_rules._probe import probe
from tooling.cfn_rules._template import integer, props

LAMBDA_MAX_TIMEOUT = 900


class SmokeProbeTimeout(CloudFormationLintRule):
    id = "E9052"
    shortdesc = "The smoke probe's Timeout outlasts its checks' request timeouts"
    description = (
        "Lambda stops a function at its Timeout (at most 900 s) and the caller then gets no report at "
        f"all. The probe's Timeout must cover each of its {len(CHECKS)} checks waiting its whole request "
        f"timeout ({TIMEOUT_VARIABLE}, a model's first token) plus the {MARGIN_SECONDS:.0f} s the handler "
        "keeps to answer."
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html"
    tags: ClassVar[list[str]] = ["resources", "lambda", "smoke"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        found = probe(cfn)
        if found is None:
            return []
        function, res = found
        p = props(res)
        variables = (p.get("Environment") or {}).get("Variables") or {}
        request = integer(variables.get(TIMEOUT_VARIABLE))
        timeout = integer(p.get("Timeout", 3))  # Lambda's default
        if request is None or request <= 0:
            return [
                RuleMatch(
                    ["Resources", function, "Properties", "Environment"],
                    f"{function} sets no literal {TIMEOUT_VARIABLE}: the checks' request timeout is unknown",
                )
            ]
        needed = len(CHECKS) * request + MARGIN_SECONDS
        if timeout is None or timeout < needed:
            return [
                RuleMatch(
                    ["Resources", function, "Properties", "Timeout"],
                    f"{function} Timeout {timeout} is shorter than {len(CHECKS)} checks x {request} s + "
                    f"{MARGIN_SECONDS:.0f} s = {needed:.0f} s: Lambda would stop it before it reports",
                )
            ]
        if needed > LAMBDA_MAX_TIMEOUT:
            return [
                RuleMatch(
                    ["Resources", function, "Properties", "Environment"],
                    f"{function}: {len(CHECKS)} checks x {request} s + {MARGIN_SECONDS:.0f} s exceeds "
                    f"Lambda's {LAMBDA_MAX_TIMEOUT} s ceiling; lower {TIMEOUT_VARIABLE}",
                )
            ]
        return []
