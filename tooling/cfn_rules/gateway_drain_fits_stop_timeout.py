"""E9031: the gateway's drain after SIGTERM ends before ECS's SIGKILL (the container's StopTimeout)."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._scaling import number
from tooling.cfn_rules._template import containers, environment, props

ECS_DEFAULT_STOP_TIMEOUT = 30  # seconds, when a container sets no StopTimeout
FARGATE_MAX_STOP_TIMEOUT = 120
# inference_server's own defaults: GATEWAY_SHUTDOWN_GRACE (config.py), SUPERVISOR_GRACE (supervisor.py).
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_SUPERVISOR_GRACE = 60.0


class GatewayDrainFitsStopTimeout(CloudFormationLintRule):
    id = "E9031"
    shortdesc = "Gateway shutdown grace ends within the container's StopTimeout"
    description = (
        "ECS stops a task behind a load balancer by deregistering it, waiting out the deregistration delay, "
        "sending SIGTERM, and sending SIGKILL once the container's StopTimeout has passed (30 s when unset; "
        "Fargate allows at most 120 s). The gateway lets in-flight streams finish for "
        "GATEWAY_SHUTDOWN_GRACE after SIGTERM, which must end before the SIGKILL; beside vLLM the image's "
        "supervisor waits up to SUPERVISOR_GRACE for the gateway and as long again for vLLM, so the "
        "gateway's grace must be below that and two of them must fit in the StopTimeout."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "gateway"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for task, index, container in containers(cfn):
            env = environment(container)
            if not any(k.startswith("GATEWAY_") for k in env):
                continue
            path = ["Resources", task, "Properties", "ContainerDefinitions", index]
            for field, message in self._problems(cfn, task, container, env):
                matches.append(RuleMatch([*path, field], message))
        return matches

    @staticmethod
    def _problems(cfn: Template, task: str, container: dict, env: dict) -> list[tuple[str, str]]:
        found = []
        owner = f"{task}: container {container.get('Name')}"
        stop = number(container.get("StopTimeout"))
        stop = ECS_DEFAULT_STOP_TIMEOUT if stop is None else stop
        grace = number(env.get("GATEWAY_SHUTDOWN_GRACE"))
        grace = DEFAULT_SHUTDOWN_GRACE if grace is None else grace
        compatibilities = props(cfn.template["Resources"][task]).get("RequiresCompatibilities") or []
        if "FARGATE" in compatibilities and stop > FARGATE_MAX_STOP_TIMEOUT:
            found.append(
                ("StopTimeout", f"{owner} sets StopTimeout {stop:g} s; Fargate allows at most "
                 f"{FARGATE_MAX_STOP_TIMEOUT}")
            )  # fmt: skip
            stop = FARGATE_MAX_STOP_TIMEOUT
        if grace >= stop:
            found.append(
                ("Environment", f"{owner}: GATEWAY_SHUTDOWN_GRACE {grace:g} s does not end before the "
                 f"StopTimeout of {stop:g} s, when ECS kills the container; keep it below "
                 "(templates/ecs.py drain_environment)")
            )  # fmt: skip
        if "ENGINE_MODEL" not in env:
            return found
        supervisor = number(env.get("SUPERVISOR_GRACE"))
        supervisor = DEFAULT_SUPERVISOR_GRACE if supervisor is None else supervisor
        if grace >= supervisor:
            found.append(
                ("Environment", f"{owner}: GATEWAY_SHUTDOWN_GRACE {grace:g} s is not below SUPERVISOR_GRACE "
                 f"{supervisor:g} s: the supervisor kills the gateway in the middle of its drain")
            )  # fmt: skip
        if 2 * supervisor > stop:
            found.append(
                ("Environment", f"{owner}: the supervisor stops the gateway then vLLM, up to "
                 f"SUPERVISOR_GRACE {supervisor:g} s each, which does not fit in the StopTimeout of "
                 f"{stop:g} s")
            )  # fmt: skip
        return found
