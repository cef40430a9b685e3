"""E9012: a VPC the stack creates has an S3 gateway endpoint on its private route tables."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, resource, target, text


def _is_s3(service: object) -> bool:
    name = text(service) or ""
    return name.endswith(".s3")


class OwnedVpcS3Endpoint(CloudFormationLintRule):
    id = "E9012"
    shortdesc = "VPCs we create route S3 through a gateway endpoint"
    description = (
        "An S3 gateway endpoint costs nothing; without one every image layer and s3:// weight an instance "
        "in a private subnet pulls goes through the NAT gateway at per-GB prices. A template that creates a "
        "VPC must create a Gateway endpoint for com.amazonaws.<region>.s3 on every route table that does not "
        "route to an internet gateway."
    )
    source_url = "https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html"
    tags: ClassVar[list[str]] = ["resources", "ec2", "vpc", "s3", "cost"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        tables = cfn.get_resources(["AWS::EC2::RouteTable"])
        public = {
            target(props(route).get("RouteTableId"))
            for route in cfn.get_resources(["AWS::EC2::Route"]).values()
            if resource(cfn, target(props(route).get("GatewayId")), "AWS::EC2::InternetGateway")
        }
        endpoints = cfn.get_resources(["AWS::EC2::VPCEndpoint"])
        for vpc in cfn.get_resources(["AWS::EC2::VPC"]):
            private = sorted(
                t for t, res in tables.items() if target(props(res).get("VpcId")) == vpc and t not in public
            )
            gateways = {
                name: res
                for name, res in endpoints.items()
                if target(props(res).get("VpcId")) == vpc
                and props(res).get("VpcEndpointType", "Gateway") == "Gateway"
                and _is_s3(props(res).get("ServiceName"))
            }
            if not gateways:
                matches.append(
                    RuleMatch(
                        ["Resources", vpc],
                        f"{vpc} has no S3 gateway endpoint: S3 traffic from private subnets goes through NAT "
                        "at per-GB prices; add a Gateway VPCEndpoint for com.amazonaws.<region>.s3 on "
                        f"{', '.join(private) or 'its private route tables'}",
                    )
                )
                continue
            covered = {
                target(t) for res in gateways.values() for t in as_list(props(res).get("RouteTableIds"))
            }
            missing = [t for t in private if t not in covered]
            if missing:
                name = sorted(gateways)[0]
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "RouteTableIds"],
                        f"{name} is not on the private route tables {', '.join(missing)}; add them to "
                        "RouteTableIds",
                    )
                )
        return matches
