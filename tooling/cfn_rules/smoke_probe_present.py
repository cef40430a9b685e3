"""E9050: a stack with an internal load balancer has a smoke probe in the load balancer's subnets."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._probe import internal_load_balancers, keys, probe, vpc_config
from tooling.cfn_rules._template import props


class SmokeProbePresent(CloudFormationLintRule):
    id = "E9050"
    shortdesc = "Internal load balancers have a smoke probe in their subnets"
    description = (
        "The nodes of an internal load balancer have only private addresses and serve only clients that "
        "reach its VPC, so `deployctl smoke` from a CI runner cannot: the stack must output "
        "SmokeProbeFunction, a Lambda function attached to the VPC in the load balancer's own subnets, "
        "which runs the smoke checks from inside."
    )
    source_url = (
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html"
    )
    tags: ClassVar[list[str]] = ["resources", "lambda", "elasticloadbalancing", "smoke"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        found = probe(cfn)
        for name, res in internal_load_balancers(cfn).items():
            if found is None:
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        f"{name} is internal but no SmokeProbeFunction output names a Lambda function: "
                        "smoke tests cannot reach it from outside the VPC",
                    )
                )
                continue
            function, function_res = found
            subnets = vpc_config(function_res).get("SubnetIds")
            if not subnets or keys(subnets) != keys(props(res).get("Subnets")):
                matches.append(
                    RuleMatch(
                        ["Resources", function, "Properties", "VpcConfig"],
                        f"{function} must be attached to the subnets of {name} (VpcConfig.SubnetIds equal "
                        "to its Subnets) to reach the internal load balancer",
                    )
                )
        return matches
