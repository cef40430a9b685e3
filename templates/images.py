"""Container images: ECR repositories made by the bootstrap stack, tags chosen at deploy time.

Templates only name the repository and take the tag as a parameter, so a new image is a parameter change,
never a template change, and tags are immutable in ECR. The gateway's tag is the commit that built it;
vLLM's is `<engine.version>-<commit>` (tooling/release/images.py), and the parameter admits only the
spec's version: CloudFormation refuses a value that does not match AllowedPattern before it changes
anything, so an image of another vLLM version cannot be deployed by a mistyped --image-tag.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html
The version is also the template's `Metadata.deployctl.vllm_version`, which rule E9045 checks against.
"""

from __future__ import annotations

import re

from troposphere import Parameter, Ref, Sub

from templates.context import Stack

GATEWAY_REPOSITORY = "deployctl/gateway"
VLLM_REPOSITORY = "deployctl/vllm"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
COMMIT = "[0-9a-f]{40}"


def vllm_tag_pattern(version: str) -> str:
    """The AllowedPattern of VllmImageTag: this version's images only, each named by a full commit."""
    return f"^{re.escape(version)}-{COMMIT}$"


def image(stack: Stack, repository: str) -> Sub:
    """The image URI for `repository`, its tag a stack parameter."""
    logical = "GatewayImageTag" if repository == GATEWAY_REPOSITORY else "VllmImageTag"
    if logical not in stack.template.parameters:
        if logical == "VllmImageTag":
            version = stack.spec.engine.version  # type: ignore[union-attr] - only vLLM stacks run it
            parameter = Parameter(
                logical,
                Type="String",
                AllowedPattern=vllm_tag_pattern(version),
                ConstraintDescription=f"a deployctl/vllm image of vLLM {version}: {version}-<40-hex commit>",
                Description=f"Tag of the {repository} image in this account's ECR: {version}-<commit>.",
            )
            metadata = stack.template.metadata.setdefault("deployctl", {})
            metadata["vllm_version"] = version
        else:
            parameter = Parameter(
                logical,
                Type="String",
                AllowedPattern=TAG_PATTERN,
                Description=f"Tag of the {repository} image in this account's ECR (the commit SHA).",
            )
        stack.template.add_parameter(parameter)
    return Sub(
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/" + repository + ":${Tag}",
        Tag=Ref(logical),
    )


def repository_arn(repository: str) -> Sub:
    return Sub("arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/" + repository)
