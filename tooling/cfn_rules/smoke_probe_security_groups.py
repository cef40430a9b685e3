"""E9051: the smoke probe's security group may reach the load balancer's, which lets it in."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._probe import internal_load_balancers, listener_ports, probe, vpc_config
from tooling.cfn_rules._template import as_list, integer, props, resource, target


def _covers(rule: dict[str, Any], port: int) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    low, high = integer(rule.get("FromPort")), integer(rule.get("ToPort"))
    return (
        str(rule.get("IpProtocol")) in ("tcp", "6")
        and low is not None
        and high is not None
        and low <= port <= high
    )


class SmokeProbeSecurityGroups(CloudFormationLintRule):
    id = "E9051"
    shortdesc = "The smoke probe's security group reaches the load balancer's"
    description = (
        "A load balancer accepts only what its security groups allow in on the listener ports, and a "
        "security group with egress rules sends only what they allow out: for every listener port, one "
        "of the probe's groups allows egress to a load balancer group and that group allows ingress from "
        "the probe's group, whatever CIDRs the load balancer otherwise admits."
    )
    source_url = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-update-security-groups.html"
    tags: ClassVar[list[str]] = ["resources", "ec2", "elasticloadbalancing", "smoke"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        found = probe(cfn)
        if found is None:
            return []
        function, function_res = found
        probe_groups = [target(g) for g in as_list(vpc_config(function_res).get("SecurityGroupIds"))]
        matches = []
        for name, res in internal_load_balancers(cfn).items():
            lb_groups = [target(g) for g in as_list(props(res).get("SecurityGroups"))]
            for port in sorted(listener_ports(cfn, name)):
                if not self._egress(cfn, probe_groups, lb_groups, port):
                    matches.append(
                        RuleMatch(
                            ["Resources", function, "Properties", "VpcConfig", "SecurityGroupIds"],
                            f"no security group of {function} allows egress to a security group of {name} "
                            f"on port {port}",
                        )
                    )
                if not self._ingress(cfn, probe_groups, lb_groups, port):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "SecurityGroups"],
                            f"no security group of {name} allows ingress from the security group of "
                            f"{function} on port {port}",
                        )
                    )
        return matches

    @staticmethod
    def _egress(
        cfn: Template, probe_groups: list[str | None], lb_groups: list[str | None], port: int
    ) -> bool:
        return _allows(cfn, probe_groups, lb_groups, port, "Egress", "DestinationSecurityGroupId")

    @staticmethod
    def _ingress(
        cfn: Template, probe_groups: list[str | None], lb_groups: list[str | None], port: int
    ) -> bool:
        return _allows(cfn, lb_groups, probe_groups, port, "Ingress", "SourceSecurityGroupId")


def _allows(
    cfn: Template, owners: list[str | None], peers: list[str | None], port: int, direction: str, peer: str
) -> bool:
    """Whether a rule of one of `owners` (inline, or an AWS::EC2::SecurityGroup<direction> resource) lets
    traffic on `port` to or from one of `peers`."""
    for group in owners:
        inline = props(resource(cfn, group, "AWS::EC2::SecurityGroup")).get(f"SecurityGroup{direction}")
        for rule in as_list(inline):
            if isinstance(rule, dict) and target(rule.get(peer)) in peers and _covers(rule, port):
                return True
    for res in cfn.get_resources([f"AWS::EC2::SecurityGroup{direction}"]).values():
        p = props(res)
        if target(p.get("GroupId")) in owners and target(p.get(peer)) in peers and _covers(p, port):
            return True
    return False
