"""The gateway alone on Fargate (ARM64 by default) before an external provider or a SageMaker endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, ecs

from templates import ecs as ecs_parts
from templates.autoscaling import add_application_scaling
from templates.context import Stack
from templates.iam import log_writer, pull_statements, role
from templates.images import GATEWAY_REPOSITORY, image
from templates.load_balancer import GATEWAY_PORT, LoadBalancer
from templates.network import Network

# Fargate gives a stopping task at most 120 s after SIGTERM; the gateway drains streams within it.
STOP_TIMEOUT = 120


@dataclass(frozen=True)
class GatewaySize:
    cpu: int
    memory: int
    architecture: str
    storage_gib: int


def add_gateway_service(
    stack: Stack,
    *,
    cluster: ecs.Cluster,
    network: Network,
    lb: LoadBalancer,
    log_group: Any,
    size: GatewaySize,
    environment: dict[str, Any],
    secrets: dict[str, Any],
    task_statements: list[dict[str, Any]],
    execution_statements: list[dict[str, Any]],
    minimum: int,
    maximum: int,
    targets: dict[str, int] | None = None,
    schedules: bool = True,
) -> ecs.Service:
    """The gateway service; `targets` None scales on the spec's targets, else on the ones given."""
    execution = role(
        stack,
        "ExecutionRole",
        "ecs-tasks.amazonaws.com",
        [*pull_statements(GATEWAY_REPOSITORY), log_writer(log_group), *execution_statements],
    )
    task_role = role(stack, "TaskRole", "ecs-tasks.amazonaws.com", task_statements)
    task = stack.add(
        ecs.TaskDefinition(
            "TaskDefinition",
            Family=stack.name,
            RequiresCompatibilities=["FARGATE"],
            NetworkMode="awsvpc",
            Cpu=str(size.cpu),
            Memory=str(size.memory),
            RuntimePlatform=ecs.RuntimePlatform(
                CpuArchitecture="ARM64" if size.architecture == "arm64" else "X86_64",
                OperatingSystemFamily="LINUX",
            ),
            EphemeralStorage=ecs.EphemeralStorage(SizeInGiB=size.storage_gib),
            ExecutionRoleArn=GetAtt(execution, "Arn"),
            TaskRoleArn=GetAtt(task_role, "Arn"),
            # The root filesystem is read-only; Python's tempfile (and anything a library writes) gets /tmp.
            Volumes=[ecs.Volume(Name="tmp")],
            ContainerDefinitions=[
                ecs.ContainerDefinition(
                    Name=ecs_parts.CONTAINER,
                    Image=image(stack, GATEWAY_REPOSITORY),
                    Essential=True,
                    PortMappings=[ecs.PortMapping(ContainerPort=GATEWAY_PORT, Protocol="tcp")],
                    Environment=ecs_parts.environment(
                        {
                            "GATEWAY_PORT": str(GATEWAY_PORT),
                            **ecs_parts.drain_environment(STOP_TIMEOUT, engine=False),
                            **environment,
                        }
                    ),
                    Secrets=[ecs.Secret(Name=k, ValueFrom=v) for k, v in sorted(secrets.items())],
                    LogConfiguration=ecs_parts.log_configuration(stack, log_group, "gateway"),
                    HealthCheck=ecs_parts.container_health_check(),
                    ReadonlyRootFilesystem=True,
                    # A task-private volume, not a shared host directory: S108 does not apply.
                    MountPoints=[ecs.MountPoint(SourceVolume="tmp", ContainerPath="/tmp", ReadOnly=False)],  # noqa: S108
                    StopTimeout=STOP_TIMEOUT,
                )
            ],
        )
    )
    autoscaled = maximum > minimum or (schedules and bool(stack.spec.scaling.schedules))
    service = ecs_parts.add_service(
        stack,
        cluster=cluster,
        task=task,
        network=network,
        lb=lb,
        grace_seconds=60,
        launch={"LaunchType": "FARGATE"},
        autoscaled=autoscaled,
        desired=minimum,
    )
    if autoscaled:
        add_application_scaling(
            stack,
            prefix="Service",
            namespace="ecs",
            resource_id=ecs_parts.service_resource_id(cluster, service),
            dimension="ecs:service:DesiredCount",
            request_label=lb.request_label,
            minimum=minimum,
            maximum=maximum,
            targets=targets,
            schedules=schedules,
        )
    return service
