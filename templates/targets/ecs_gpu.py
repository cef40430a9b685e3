"""`ecs-gpu`: vLLM and the gateway in one ECS task on GPU instances of an EC2 capacity provider."""

from __future__ import annotations

from troposphere import GetAtt, Ref, Sub, ecs

from templates import ecs as ecs_parts
from templates.autoscaling import add_application_scaling
from templates.context import Stack
from templates.engine import engine_environment
from templates.gpu_hosts import add_gpu_group, scaling_ceiling
from templates.iam import (
    log_writer,
    pull_statements,
    role,
    secret_arn_by_name,
    secret_reader,
    secret_value_from,
    statement,
)
from templates.images import VLLM_REPOSITORY, image
from templates.load_balancer import GATEWAY_PORT
from templates.targets.shared import Shared
from templates.weights import weight_readers

# Loading a multi-GB model takes minutes: the ALB's health checks only count after this.
MODEL_LOAD_GRACE_SECONDS = 1800
STOP_TIMEOUT = 120


def build(stack: Stack, shared: Shared) -> None:
    gpu = stack.spec.compute.gpu
    cluster = ecs_parts.add_cluster(stack)
    instance_role = role(
        stack,
        "InstanceRole",
        "ec2.amazonaws.com",
        [],
        managed=("service-role/AmazonEC2ContainerServiceforEC2Role",),
    )
    user_data = Sub(
        "#!/bin/bash\n"
        "cat >> /etc/ecs/ecs.config <<'CONFIG'\n"
        "ECS_CLUSTER=${Cluster}\n"
        "ECS_ENABLE_GPU_SUPPORT=true\n"
        "ECS_AWSVPC_BLOCK_IMDS=true\n"
        "ECS_IMAGE_PULL_BEHAVIOR=prefer-cached\n"
        "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n"
        f"ECS_CONTAINER_STOP_TIMEOUT={STOP_TIMEOUT}s\n"
        "CONFIG\n",
        Cluster=Ref(cluster),
    )
    group = add_gpu_group(
        stack,
        shared.network,
        instance_role=instance_role,
        user_data=user_data,
        max_size=scaling_ceiling(stack),
        # ECS managed termination protection needs new instances protected; ECS lifts it when idle.
        group_options={"NewInstancesProtectedFromScaleIn": True},
    )
    provider = stack.add(
        ecs.CapacityProvider(
            "CapacityProvider",
            AutoScalingGroupProvider=ecs.AutoScalingGroupProvider(
                AutoScalingGroupArn=Ref(group),
                ManagedScaling=ecs.ManagedScaling(
                    Status="ENABLED", TargetCapacity=100, MinimumScalingStepSize=1, MaximumScalingStepSize=2
                ),
                ManagedTerminationProtection="ENABLED",
                ManagedDraining="ENABLED",
            ),
        )
    )
    association = stack.add(
        ecs.ClusterCapacityProviderAssociations(
            "CapacityProviderAssociation",
            Cluster=Ref(cluster),
            CapacityProviders=[Ref(provider)],
            DefaultCapacityProviderStrategy=[
                ecs.CapacityProviderStrategy(CapacityProvider=Ref(provider), Weight=1)
            ],
        )
    )
    hf_token = stack.spec.model.token_secret
    execution = role(
        stack,
        "ExecutionRole",
        "ecs-tasks.amazonaws.com",
        [
            *pull_statements(VLLM_REPOSITORY),
            log_writer(shared.log_group),
            *(
                [statement(["secretsmanager:GetSecretValue"], secret_arn_by_name(hf_token))]
                if hf_token
                else []
            ),
        ],
    )
    task_statements = weight_readers(stack.spec)
    if shared.api_key:
        task_statements += secret_reader(shared.api_key.arn, shared.key_arn)
    task_role = role(stack, "TaskRole", "ecs-tasks.amazonaws.com", task_statements)
    memory = int(gpu.memory_gib * 1024 * 0.9) // 256 * 256  # the agent and the OS keep the rest
    task = stack.add(
        ecs.TaskDefinition(
            "TaskDefinition",
            Family=stack.name,
            RequiresCompatibilities=["EC2"],
            NetworkMode="awsvpc",
            Memory=str(memory),
            ExecutionRoleArn=GetAtt(execution, "Arn"),
            TaskRoleArn=GetAtt(task_role, "Arn"),
            ContainerDefinitions=[
                ecs.ContainerDefinition(
                    Name=ecs_parts.CONTAINER,
                    Image=image(stack, VLLM_REPOSITORY),
                    Essential=True,
                    PortMappings=[ecs.PortMapping(ContainerPort=GATEWAY_PORT, Protocol="tcp")],
                    Environment=ecs_parts.environment(
                        {
                            **engine_environment(stack.spec),
                            **shared.gateway_environment(),
                            "GATEWAY_PORT": str(GATEWAY_PORT),
                        }
                    ),
                    Secrets=[ecs.Secret(Name="HF_TOKEN", ValueFrom=secret_value_from(hf_token))]
                    if hf_token
                    else [],
                    ResourceRequirements=[ecs.ResourceRequirement(Type="GPU", Value=str(gpu.gpus))],
                    # NCCL and vLLM's workers exchange tensors through /dev/shm.
                    LinuxParameters=ecs.LinuxParameters(SharedMemorySize=min(16384, memory // 4)),
                    LogConfiguration=ecs_parts.log_configuration(stack, shared.log_group, "vllm"),
                    StopTimeout=STOP_TIMEOUT,
                )
            ],
        ),
        skip={"CKV_AWS_43": "vLLM writes its compile and download caches under its home directory"},
    )
    service = ecs_parts.add_service(
        stack,
        cluster=cluster,
        task=task,
        network=shared.network,
        lb=shared.lb,
        grace_seconds=MODEL_LOAD_GRACE_SECONDS,
        launch={
            "CapacityProviderStrategy": [
                ecs.CapacityProviderStrategyItem(CapacityProvider=Ref(provider), Weight=1)
            ],
            "PlacementStrategies": [
                ecs.PlacementStrategy(Type="spread", Field="attribute:ecs.availability-zone")
            ],
        },
        autoscaled=_autoscaled(stack),
        desired=stack.spec.scaling.min,
    )
    service.DependsOn = [*service.DependsOn, association.title]
    if _autoscaled(stack):
        add_application_scaling(
            stack,
            prefix="Service",
            namespace="ecs",
            resource_id=ecs_parts.service_resource_id(cluster, service),
            dimension="ecs:service:DesiredCount",
            request_label=shared.lb.request_label,
        )


def _autoscaled(stack: Stack) -> bool:
    return stack.spec.scaling.max > stack.spec.scaling.min or bool(stack.spec.scaling.schedules)
