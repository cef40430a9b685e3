"""E9007: containers on Docker's bridge network can reach the instance's IAM credentials (IMDSv2)."""

from __future__ import annotations

import re
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import docker_runs, integer, props

_HOST_NETWORK = re.compile(r"--net(work)?[= ]host\b")


class ContainerImdsHopLimit(CloudFormationLintRule):
    id = "E9007"
    shortdesc = "Bridge-network containers get IMDSv2 with a hop limit of 2"
    description = (
        "A container on Docker's bridge network is one network hop further from the instance metadata "
        "service than the host. With IMDSv2 (HttpTokens required) and a PUT response hop limit of 1 the "
        "token never reaches it, so it gets no instance role credentials. Launch templates whose user data "
        "starts containers without --network host need HttpTokens required and HttpPutResponseHopLimit of "
        "at least 2."
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html"
    )
    tags: ClassVar[list[str]] = ["resources", "ec2", "imds", "docker"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::EC2::LaunchTemplate"]).items():
            data = props(res).get("LaunchTemplateData") or {}
            bridged = [run for run in docker_runs(data.get("UserData")) if not _HOST_NETWORK.search(run)]
            if not bridged:
                continue
            options = data.get("MetadataOptions") or {}
            path = ["Resources", name, "Properties", "LaunchTemplateData", "MetadataOptions"]
            if options.get("HttpEndpoint") == "disabled":
                matches.append(
                    RuleMatch(
                        [*path, "HttpEndpoint"],
                        f"{name} runs containers that need the instance role but disables the metadata "
                        "service; set HttpEndpoint enabled",
                    )
                )
            if options.get("HttpTokens") != "required":
                matches.append(
                    RuleMatch(
                        [*path, "HttpTokens"] if "HttpTokens" in options else path,
                        f"{name} runs containers on Docker's bridge network: set MetadataOptions "
                        "HttpTokens to required (IMDSv2)",
                    )
                )
            hops = integer(options.get("HttpPutResponseHopLimit", 1))
            if hops is None or hops < 2:
                matches.append(
                    RuleMatch(
                        [*path, "HttpPutResponseHopLimit"] if "HttpPutResponseHopLimit" in options else path,
                        f"{name} runs containers on Docker's bridge network with an IMDS hop limit of "
                        f"{options.get('HttpPutResponseHopLimit', 1)}: they get no credentials; set "
                        "HttpPutResponseHopLimit to 2",
                    )
                )
        return matches
