"""E9016: instances whose user data needs the network launch after their subnets' default routes."""

from __future__ import annotations

import re
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, depends_on, props, resource, target, text

# user data commands that reach beyond the instance (registries, AWS APIs, model hubs)
_NETWORK_COMMANDS = re.compile(
    r"(^|[\s;&|(])(docker\s+(run|pull|login)|aws\s|curl\s|wget\s|pip\s+install)", re.M
)


def _launch_template(cfn: Template, group: dict) -> dict:
    p = props(group)
    spec = p.get("LaunchTemplate") or (p.get("MixedInstancesPolicy") or {}).get("LaunchTemplate", {}).get(
        "LaunchTemplateSpecification"
    )
    return props(resource(cfn, target((spec or {}).get("LaunchTemplateId")), "AWS::EC2::LaunchTemplate"))


class InstancesAfterEgress(CloudFormationLintRule):
    id = "E9016"
    shortdesc = "Instances that need the network start after their routes exist"
    description = (
        "CloudFormation creates resources in parallel unless one depends on another. An Auto Scaling group "
        "only references its subnets, so its instances can boot before the subnet's route table association "
        "and default route (to the NAT or internet gateway) exist, and user data that pulls images or calls "
        "AWS fails. A group whose user data needs the network must DependsOn the route table associations "
        "and default routes of its subnets."
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-dependson.html"
    )
    tags: ClassVar[list[str]] = ["resources", "autoscaling", "ec2", "dependson"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        associations = cfn.get_resources(["AWS::EC2::SubnetRouteTableAssociation"])
        routes = cfn.get_resources(["AWS::EC2::Route"])
        matches = []
        for name, group in cfn.get_resources(["AWS::AutoScaling::AutoScalingGroup"]).items():
            script = (
                text((_launch_template(cfn, group).get("LaunchTemplateData") or {}).get("UserData")) or ""
            )
            if not _NETWORK_COMMANDS.search(script):
                continue
            needed = []
            for subnet in {target(s) for s in as_list(props(group).get("VPCZoneIdentifier"))}:
                if resource(cfn, subnet, "AWS::EC2::Subnet") is None:
                    continue
                for assoc, res in associations.items():
                    if target(props(res).get("SubnetId")) != subnet:
                        continue
                    table = target(props(res).get("RouteTableId"))
                    needed.append(assoc)
                    needed += [
                        route
                        for route, rres in routes.items()
                        if target(props(rres).get("RouteTableId")) == table
                        and props(rres).get("DestinationCidrBlock") == "0.0.0.0/0"
                    ]
            missing = sorted({n for n in needed if not depends_on(cfn, name, n)})
            if missing:
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        f"{name} runs user data that needs the network but does not depend on "
                        f"{', '.join(missing)}; add them to DependsOn",
                    )
                )
        return matches
