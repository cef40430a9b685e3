"""`ec2`: an autoscaling group of GPU instances behind the ALB, each running the vLLM image from user data."""

from __future__ import annotations

from typing import Any

from troposphere import Ref, Sub
from troposphere.policies import AutoScalingRollingUpdate, UpdatePolicy

from templates.autoscaling import add_group_scaling
from templates.context import Stack
from templates.engine import engine_environment
from templates.gpu_hosts import add_gpu_group, scaling_ceiling
from templates.iam import log_writer, pull_statements, role, secret_arn_by_name, secret_reader, statement
from templates.images import VLLM_REPOSITORY, image
from templates.load_balancer import GATEWAY_PORT
from templates.targets.shared import Shared
from templates.weights import weight_readers

MODEL_LOAD_GRACE_SECONDS = 1800


def build(stack: Stack, shared: Shared) -> None:
    spec = stack.spec
    hf_token = spec.model.token_secret
    statements = [
        *pull_statements(VLLM_REPOSITORY),
        log_writer(shared.log_group),
        *weight_readers(spec),
        *(secret_reader(shared.api_key.arn, shared.key_arn) if shared.api_key else []),
        *([statement(["secretsmanager:GetSecretValue"], secret_arn_by_name(hf_token))] if hf_token else []),
    ]
    instance_role = role(stack, "InstanceRole", "ec2.amazonaws.com", statements)
    environment: dict[str, Any] = {
        **engine_environment(spec),
        **shared.gateway_environment(),
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "AWS_REGION": Ref("AWS::Region"),
    }
    flags, variables = docker_env_flags(environment)
    token = (
        "HF_TOKEN=$(aws secretsmanager get-secret-value --secret-id "
        + shell_quote(escape_sub(hf_token))
        + " --query SecretString --output text)\nexport HF_TOKEN\n"
        if hf_token
        else ""
    )
    script = (
        "#!/bin/bash\nset -euo pipefail\n"
        # This target runs one container per instance with plain Docker; the ECS agent stays off.
        "systemctl disable --now ecs || true\n"
        "registry=${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}\n"
        "aws ecr get-login-password --region ${AWS::Region}"
        ' | docker login --username AWS --password-stdin "$registry"\n'
        f"{token}"
        "docker run --detach --name vllm --restart unless-stopped --gpus all --ipc host"
        f" --publish {GATEWAY_PORT}:{GATEWAY_PORT}"
        " --log-driver awslogs --log-opt awslogs-group=${LogGroup} --log-opt awslogs-region=${AWS::Region}"
        " --log-opt awslogs-stream-prefix=vllm --log-opt mode=non-blocking"
        + (" --env HF_TOKEN" if hf_token else "")
        + f" {flags} ${{Image}}\n"
    )
    user_data = Sub(script, LogGroup=Ref(shared.log_group), Image=image(stack, VLLM_REPOSITORY), **variables)
    ceiling = scaling_ceiling(stack)
    group = add_gpu_group(
        stack,
        shared.network,
        instance_role=instance_role,
        user_data=user_data,
        min_size=spec.scaling.min,
        max_size=ceiling,
        group_options={
            "TargetGroupARNs": [Ref(shared.lb.target_group)],
            "HealthCheckType": "ELB",
            "HealthCheckGracePeriod": MODEL_LOAD_GRACE_SECONDS,
            "DefaultInstanceWarmup": 900,
            # A new launch template version replaces instances one at a time, keeping the minimum serving
            # (AWS requires fewer in service than MaxSize, so a single-instance group has a gap).
            "UpdatePolicy": UpdatePolicy(
                AutoScalingRollingUpdate=AutoScalingRollingUpdate(
                    MinInstancesInService=min(spec.scaling.min, ceiling - 1),
                    MaxBatchSize=1,
                    PauseTime="PT25M",
                )
            ),
        },
    )
    add_group_scaling(stack, group, shared.lb.request_label)


def docker_env_flags(environment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`--env NAME=value` flags for a Sub: text is quoted and escaped, expressions become Sub variables."""
    flags, variables = [], {}
    for index, (name, value) in enumerate(sorted(environment.items())):
        if isinstance(value, str):
            flags.append(f"--env {name}={shell_quote(escape_sub(value))}")
        else:
            variable = f"Env{index}"
            variables[variable] = value
            flags.append(f"--env {name}='${{{variable}}}'")
    return " ".join(flags), variables


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def escape_sub(text: str) -> str:
    """Literal `${` in Fn::Sub text is written `${!`."""
    return text.replace("${", "${!")
