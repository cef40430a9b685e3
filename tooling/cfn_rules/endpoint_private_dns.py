"""E9006: no private-DNS interface endpoint in a VPC the stack does not own, unless asked for."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import props, resource, target, truthy

OPT_IN = {"deployctl": {"endpoint_private_dns": "explicit"}}


class EndpointPrivateDns(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "Private DNS endpoints only in our own VPC, or on request"
    description = (
        "An interface endpoint with private DNS associates a private hosted zone for the service's public "
        "name with the VPC. A VPC the stack does not create may already have an endpoint (or another "
        "deployment's) for that service, and the second association fails or takes over name resolution for "
        "everything in the VPC. Outside a VPC the template creates, private DNS needs the explicit opt-in "
        "Metadata {deployctl: {endpoint_private_dns: explicit}}."
    )
    source_url = "https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html"
    tags: ClassVar[list[str]] = ["resources", "ec2", "vpc", "privatelink"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::EC2::VPCEndpoint"]).items():
            p = props(res)
            if p.get("VpcEndpointType") != "Interface" or not truthy(p.get("PrivateDnsEnabled")):
                continue
            if resource(cfn, target(p.get("VpcId")), "AWS::EC2::VPC"):
                continue
            opt_in = ((res.get("Metadata") or {}).get("deployctl") or {}).get("endpoint_private_dns")
            if opt_in == "explicit":
                continue
            matches.append(
                RuleMatch(
                    ["Resources", name, "Properties", "PrivateDnsEnabled"],
                    f"{name} enables private DNS in a VPC this stack does not create: it can clash with the "
                    "VPC's own endpoints; set PrivateDnsEnabled false, or record the request with Metadata "
                    "deployctl.endpoint_private_dns: explicit",
                )
            )
        return matches
