"""Container images: ECR repositories made by the bootstrap stack, tags chosen at deploy time.

Templates only name the repository and take the tag as a parameter (the commit SHA the deploy workflow
pushed), so a new image is a parameter change, never a template change, and tags are immutable in ECR.
"""

from __future__ import annotations

from troposphere import Parameter, Ref, Sub

from templates.context import Stack

GATEWAY_REPOSITORY = "deployctl/gateway"
VLLM_REPOSITORY = "deployctl/vllm"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


def image(stack: Stack, repository: str) -> Sub:
    """The image URI for `repository`, its tag a stack parameter."""
    logical = "GatewayImageTag" if repository == GATEWAY_REPOSITORY else "VllmImageTag"
    if logical not in stack.template.parameters:
        stack.template.add_parameter(
            Parameter(
                logical,
                Type="String",
                AllowedPattern=TAG_PATTERN,
                Description=f"Tag of the {repository} image in this account's ECR (the commit SHA).",
            )
        )
    return Sub(
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/" + repository + ":${Tag}",
        Tag=Ref(logical),
    )


def repository_arn(repository: str) -> Sub:
    return Sub("arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/" + repository)
