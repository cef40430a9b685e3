"""Gateway containers that front a SageMaker endpoint (inference_server's `sagemaker` upstream)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cfnlint.template import Template

from tooling.cfn_rules._template import containers, environment, props


def sagemaker_gateways(cfn: Template) -> Iterator[tuple[str, int, dict[str, Any], dict[str, Any]]]:
    """(task definition, container index, container, environment) of each SageMaker-fronting gateway."""
    for task, i, container in containers(cfn):
        env = environment(container)
        if env.get("GATEWAY_UPSTREAM") == "sagemaker" or "GATEWAY_SAGEMAKER_ENDPOINT" in env:
            yield task, i, container, env


def task_role(cfn: Template, task: str) -> Any:
    return props(cfn.template["Resources"][task]).get("TaskRoleArn")
