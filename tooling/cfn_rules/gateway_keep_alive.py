"""E9009: the gateway keeps idle connections open longer than the load balancer in front of it."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import gateways, integer, props

DEFAULT_IDLE_TIMEOUT = 60  # seconds, when the load balancer does not set idle_timeout.timeout_seconds
KEEP_ALIVE = "GATEWAY_KEEP_ALIVE_TIMEOUT"


def idle_timeout(cfn: Template) -> int | None:
    """The longest idle timeout of the template's Application Load Balancers, or None without one."""
    found = []
    for res in cfn.get_resources(["AWS::ElasticLoadBalancingV2::LoadBalancer"]).values():
        p = props(res)
        if p.get("Type", "application") != "application":
            continue
        value = DEFAULT_IDLE_TIMEOUT
        for attribute in p.get("LoadBalancerAttributes", []) or []:
            if isinstance(attribute, dict) and attribute.get("Key") == "idle_timeout.timeout_seconds":
                value = integer(attribute.get("Value")) or DEFAULT_IDLE_TIMEOUT
        found.append(value)
    return max(found) if found else None


class GatewayKeepAlive(CloudFormationLintRule):
    id = "E9009"
    shortdesc = "Gateway keep-alive outlasts the load balancer's idle timeout"
    description = (
        "AWS recommends that targets keep idle connections open longer than the Application Load "
        "Balancer's idle timeout; otherwise the target closes a connection the load balancer is about to "
        "reuse and clients get intermittent 502s. Every gateway container behind an ALB in the template must "
        "set GATEWAY_KEEP_ALIVE_TIMEOUT above the ALB's idle_timeout.timeout_seconds."
    )
    source_url = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html"
    tags: ClassVar[list[str]] = ["resources", "elasticloadbalancingv2", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        idle = idle_timeout(cfn)
        if idle is None:
            return []
        matches = []
        for path, env in gateways(cfn):
            owner = path[1]
            keep_alive = integer(env.get(KEEP_ALIVE))
            if KEEP_ALIVE not in env:
                message = f"{owner}: the gateway does not set {KEEP_ALIVE}; set it above the ALB's {idle} s"
            elif keep_alive is not None and keep_alive <= idle:
                message = (
                    f"{owner}: {KEEP_ALIVE} {keep_alive} s is not longer than the ALB idle timeout of "
                    f"{idle} s; set it to at least {idle + 1} (the templates use {idle + 5})"
                )
            else:
                continue
            matches.append(RuleMatch(path, message))
        return matches
