"""`ec2`: an autoscaling group of GPU instances behind the ALB, each running the vLLM image from user data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from troposphere import Ref, Sub
from troposphere.policies import (
    AutoScalingRollingUpdate,
    AutoScalingScheduledAction,
    CreationPolicy,
    ResourceSignal,
    UpdatePolicy,
)

from templates.autoscaling import add_group_scaling
from templates.context import Stack
from templates.engine import engine_environment
from templates.gpu_hosts import DEPLOY_HEADROOM, GROUP, add_gpu_group, group_ceiling
from templates.iam import log_writer, pull_statements, role, secret_readers_by_name, statement
from templates.images import VLLM_REPOSITORY, image
from templates.load_balancer import GATEWAY_PORT
from templates.targets.shared import Shared
from templates.weights import weight_readers

MODEL_LOAD_GRACE_SECONDS = 1800
BOOT_SOURCE = Path(__file__).parents[1] / "runtime" / "boot_aws.py"
# The instance signals CloudFormation once the container answers /ready (vLLM loaded, gateway up).
# PT1H is the longest PauseTime CloudFormation takes: image pull (~10 GB), then the model load grace.
SIGNAL_TIMEOUT = "PT1H"
READY_URL = f"http://127.0.0.1:{GATEWAY_PORT}/ready"
# Processes AWS says to suspend during a rolling update so that scaling does not change the group
# under CloudFormation (https://repost.aws/knowledge-center/auto-scaling-group-rolling-updates).
ROLLING_SUSPEND = ["AlarmNotification", "AZRebalance", "HealthCheck", "ReplaceUnhealthy", "ScheduledActions"]


def build(stack: Stack, shared: Shared) -> None:
    spec = stack.spec
    hf_token = spec.model.token_secret
    statements = [
        *pull_statements(VLLM_REPOSITORY),
        log_writer(shared.log_group),
        *weight_readers(spec),
        *shared.key_readers(),
        *(secret_readers_by_name([hf_token]) if hf_token else []),
        # The boot script reports each instance to this stack's creation and rolling-update policies.
        statement(["cloudformation:SignalResource"], Ref("AWS::StackId")),
    ]
    instance_role = role(stack, "InstanceRole", "ec2.amazonaws.com", statements)
    environment: dict[str, Any] = {
        **engine_environment(spec),
        **shared.gateway_environment(),
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "AWS_REGION": Ref("AWS::Region"),
    }
    flags, variables = docker_env_flags(environment)
    user_data = Sub(
        boot_script(flags, hf_token),
        LogGroup=Ref(shared.log_group),
        Image=image(stack, VLLM_REPOSITORY),
        ReadyUrl=READY_URL,
        **variables,
    )
    minimum = spec.scaling.min
    group = add_gpu_group(
        stack,
        shared.network,
        instance_role=instance_role,
        user_data=user_data,
        min_size=minimum,
        # One more than scaling can ask for, so a rolling update at full scale can start the new
        # instance before it stops an old one (MinInstancesInService must stay below MaxSize).
        max_size=group_ceiling(stack),
        # The container runs on Docker's bridge network, one hop beyond the host: with hop limit 1 its
        # IMDSv2 token never arrives and the gateway has no credentials. "In a container environment,
        # we recommend setting the hop limit to 2" (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/
        # configuring-instance-metadata-options.html; AL2023's own default: .../linux/al2023/ug/imdsv2.html).
        hop_limit=2,
        group_options={
            "TargetGroupARNs": [Ref(shared.lb.target_group)],
            "HealthCheckType": "ELB",
            "HealthCheckGracePeriod": MODEL_LOAD_GRACE_SECONDS,
            "DefaultInstanceWarmup": 900,
            # Creation waits for every first instance to answer /ready; a bad image fails the create.
            **(
                {
                    "CreationPolicy": CreationPolicy(
                        ResourceSignal=ResourceSignal(Count=minimum, Timeout=SIGNAL_TIMEOUT)
                    )
                }
                if minimum > 0
                else {}
            ),
            "UpdatePolicy": UpdatePolicy(
                # A new launch template version replaces instances one at a time; each must signal
                # /ready before the next is touched, or CloudFormation stops and rolls the update back.
                # scaling.min stay in service throughout: a one-instance group gets its new instance
                # before the old one goes (the +1 in MaxSize).
                AutoScalingRollingUpdate=AutoScalingRollingUpdate(
                    MinInstancesInService=minimum,
                    MaxBatchSize=1,
                    MinSuccessfulInstancesPercent=100,
                    PauseTime=SIGNAL_TIMEOUT,
                    WaitOnResourceSignals=True,
                    SuspendProcesses=ROLLING_SUSPEND,
                ),
                # With scheduled actions, an update must not reset the sizes the schedule chose
                # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-updatepolicy.html).
                **(
                    {
                        "AutoScalingScheduledAction": AutoScalingScheduledAction(
                            IgnoreUnmodifiedGroupSizeProperties=True
                        )
                    }
                    if spec.scaling.schedules
                    else {}
                ),
            ),
        },
    )
    add_group_scaling(stack, group, shared.lb.request_label, headroom=DEPLOY_HEADROOM)


def boot_script(flags: str, hf_token: str | None) -> str:
    """The user data (an Fn::Sub body): bash, Docker and python3, which the ECS GPU AMI has; no AWS CLI.

    Network steps retry with backoff (the NAT route or the VPC endpoints may not answer yet at boot);
    any step that gives up signals FAILURE, so CloudFormation fails fast instead of waiting out the
    timeout; SUCCESS is signalled only once the container answers /ready on the instance.
    """
    token = (
        "token=$(retry 10 aws_call secret " + shell_quote(escape_sub(hf_token)) + ")"
        ' || fail "cannot read the Hugging Face token secret"\nexport HF_TOKEN="$token"\n'
        if hf_token
        else ""
    )
    # The module's docstring stays in the repository: user data is capped at 16 KB.
    source = BOOT_SOURCE.read_text(encoding="utf-8")
    helper = escape_sub(
        "# templates/runtime/boot_aws.py (docstring there)\n" + source.split('"""', 2)[2].lstrip()
    )
    return (
        "#!/bin/bash\n"
        "# deployctl ec2 host: one vLLM + gateway container started by Docker; the ECS agent stays off.\n"
        "set -uo pipefail\n"
        "export AWS_REGION=${AWS::Region} AWS_URL_SUFFIX=${AWS::URLSuffix}"
        f" STACK_NAME=${{AWS::StackName}} LOGICAL_ID={GROUP}\n"
        'boot="${!DEPLOYCTL_ROOT:-}/usr/local/lib/deployctl/boot_aws.py"\n'
        'mkdir -p "$(dirname "$boot")"\n'
        "cat > \"$boot\" <<'BOOT_AWS'\n" + helper + "BOOT_AWS\n"
        'aws_call() { python3 "$boot" "$@"; }\n'
        "# retry ATTEMPTS COMMAND...: exponential backoff from 2 s, capped at 60 s.\n"
        "retry() {\n"
        "  local attempts=$1 delay=2 n=1\n"
        "  shift\n"
        '  until "$@"; do\n'
        '    if [ "$n" -ge "$attempts" ]; then return 1; fi\n'
        '    echo "attempt $n/$attempts of $1 failed; again in $delay s" >&2\n'
        '    sleep "$delay"\n'
        "    n=$((n + 1)); delay=$((delay * 2)); if [ $delay -gt 60 ]; then delay=60; fi\n"
        "  done\n"
        "}\n"
        'fail() { echo "deployctl boot failed: $*" >&2; retry 5 aws_call signal FAILURE; exit 1; }\n'
        "systemctl disable --now ecs || true\n"
        # User data runs on the first boot only; after a reboot the container comes back through
        # --restart unless-stopped, which needs dockerd itself started at boot, not by the ECS agent
        # we just disabled (https://docs.docker.com/engine/install/linux-postinstall/#configure-docker-to-start-on-boot-with-systemd).
        'systemctl enable --now docker || fail "cannot start docker"\n'
        "registry=${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}\n"
        # Up to ~25 minutes for the route out (NAT gateway or endpoints) to exist.
        'retry 30 aws_call reachable || fail "no route to the ECR API"\n'
        'login() { aws_call ecr-password | docker login --username AWS --password-stdin "$registry"; }\n'
        'retry 10 login || fail "docker login to $registry"\n'
        'retry 10 docker pull "${Image}" || fail "docker pull ${Image}"\n'
        f"{token}"
        "docker rm --force vllm >/dev/null 2>&1 || true\n"
        "docker run --detach --name vllm --restart unless-stopped --gpus all --ipc host"
        f" --publish {GATEWAY_PORT}:{GATEWAY_PORT}"
        " --log-driver awslogs --log-opt awslogs-group=${LogGroup} --log-opt awslogs-region=${AWS::Region}"
        " --log-opt awslogs-stream-prefix=vllm --log-opt mode=non-blocking"
        + (" --env HF_TOKEN" if hf_token else "")
        + f' {flags} "${{Image}}" || fail "docker run"\n'
        f"deadline=$((SECONDS + {MODEL_LOAD_GRACE_SECONDS}))\n"
        'until aws_call ready "${ReadyUrl}"; do\n'
        '  if [ "$SECONDS" -ge "$deadline" ]; then fail "not ready after'
        f' {MODEL_LOAD_GRACE_SECONDS} s"; fi\n'
        "  if [ \"$(docker inspect --format '{{.RestartCount}}' vllm)\" -gt 3 ]; then"
        ' fail "the container keeps exiting"; fi\n'
        "  sleep 10\n"
        "done\n"
        'retry 5 aws_call signal SUCCESS || echo "could not signal CloudFormation" >&2\n'
    )


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
