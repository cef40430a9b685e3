"""E9017: instances that signal CloudFormation can reach it from their private subnets."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, resource, target, text, truthy


def _waits_for_signals(res: dict[str, Any]) -> bool:
    creation = (res.get("CreationPolicy") or {}).get("ResourceSignal")
    rolling = (res.get("UpdatePolicy") or {}).get("AutoScalingRollingUpdate") or {}
    return bool(creation) or truthy(rolling.get("WaitOnResourceSignals"))


def _cloudformation_endpoint(cfn: Template, vpc: str | None) -> bool:
    """An interface endpoint for com.amazonaws.<region>.cloudformation with private DNS in `vpc`."""
    for res in cfn.get_resources(["AWS::EC2::VPCEndpoint"]).values():
        p = props(res)
        name = text(p.get("ServiceName")) or ""
        if (
            name.endswith(".cloudformation")
            and p.get("VpcEndpointType") == "Interface"
            and truthy(p.get("PrivateDnsEnabled"))
            and (vpc is None or target(p.get("VpcId")) == vpc)
        ):
            return True
    return False


class SignalsReachCloudFormation(CloudFormationLintRule):
    id = "E9017"
    shortdesc = "Instances that signal CloudFormation have a route to it"
    description = (
        "A CreationPolicy ResourceSignal or a rolling update with WaitOnResourceSignals waits for the "
        "instances to call cloudformation:SignalResource. From private subnets that call needs a default "
        "route through a NAT gateway or an interface VPC endpoint for com.amazonaws.<region>.cloudformation "
        "with private DNS; without either every create and update waits out its signal timeout and rolls "
        "back."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/vpc-interface-endpoints.html"
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "creationpolicy", "vpc"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        associations = cfn.get_resources(["AWS::EC2::SubnetRouteTableAssociation"])
        routes = cfn.get_resources(["AWS::EC2::Route"])
        matches = []
        for name, group in cfn.get_resources(["AWS::AutoScaling::AutoScalingGroup"]).items():
            if not _waits_for_signals(group):
                continue
            for subnet in sorted({target(s) or "" for s in as_list(props(group).get("VPCZoneIdentifier"))}):
                found = resource(cfn, subnet, "AWS::EC2::Subnet")
                if found is None:
                    continue  # a subnet this template does not create: its routes are not known here
                tables = {
                    target(props(a).get("RouteTableId"))
                    for a in associations.values()
                    if target(props(a).get("SubnetId")) == subnet
                }
                out = any(
                    target(props(r).get("RouteTableId")) in tables
                    and props(r).get("DestinationCidrBlock") == "0.0.0.0/0"
                    and (props(r).get("NatGatewayId") or props(r).get("GatewayId"))
                    for r in routes.values()
                )
                if out or _cloudformation_endpoint(cfn, target(props(found).get("VpcId"))):
                    continue
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        f"{name} waits for instance signals, but its subnet {subnet} has no default route "
                        "out and the VPC no com.amazonaws.<region>.cloudformation interface endpoint with "
                        "private DNS: SignalResource cannot arrive; add the endpoint or a NAT gateway",
                    )
                )
        return matches
