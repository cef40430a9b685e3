"""E9011: a gateway fronting SageMaker waits longer than botocore's default 60 s read timeout."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._sagemaker import sagemaker_gateways
from tooling.cfn_rules._template import integer

BOTOCORE_READ_TIMEOUT = 60
TIMEOUT = "GATEWAY_UPSTREAM_TIMEOUT"


class SageMakerGatewayTimeout(CloudFormationLintRule):
    id = "E9011"
    shortdesc = "SageMaker gateways set an upstream timeout above 60 s"
    description = (
        "InvokeEndpoint gives a model 60 seconds to answer and botocore's default read timeout is also "
        "60 seconds, so long generations fail unless the gateway streams (InvokeEndpointWithResponseStream) "
        "with a longer read timeout. A SageMaker-fronting gateway must set GATEWAY_UPSTREAM_TIMEOUT above 60."
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html"
    tags: ClassVar[list[str]] = ["resources", "sagemaker", "gateway", "timeouts"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for task, i, _container, env in sagemaker_gateways(cfn):
            value = integer(env.get(TIMEOUT))
            if TIMEOUT in env and (value is None or value > BOTOCORE_READ_TIMEOUT):
                continue
            shown = "is not set" if TIMEOUT not in env else f"is {value} s"
            matches.append(
                RuleMatch(
                    ["Resources", task, "Properties", "ContainerDefinitions", i, "Environment"],
                    f"{task}: the SageMaker gateway's {TIMEOUT} {shown}; botocore's default read timeout "
                    f"({BOTOCORE_READ_TIMEOUT} s) cuts long generations; set it above that",
                )
            )
        return matches
