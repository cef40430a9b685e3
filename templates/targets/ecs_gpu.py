"""`ecs-gpu`: vLLM and the gateway in one ECS task on GPU instances of an EC2 capacity provider."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from troposphere import GetAtt, Ref, Sub, awslambda, cloudformation, ecs

from templates import ecs as ecs_parts
from templates.autoscaling import add_application_scaling
from templates.context import Stack
from templates.engine import engine_environment
from templates.gpu_hosts import add_gpu_group, group_ceiling
from templates.iam import (
    log_writer,
    pull_statements,
    role,
    secret_readers_by_name,
    secret_value_from,
    statement,
)
from templates.images import VLLM_REPOSITORY, image
from templates.load_balancer import GATEWAY_PORT
from templates.logs import add_log_group
from templates.targets.shared import Shared
from templates.weights import weight_readers

# Loading a multi-GB model takes minutes: the ALB's health checks only count after this.
MODEL_LOAD_GRACE_SECONDS = 1800
STOP_TIMEOUT = 120
# A GPU task that fails costs an instance launch, a ~10 GB image pull and up to the grace period above
# before ECS counts it, and the circuit breaker's default waits for max(3, half the desired count) such
# failures: hours of a bad deploy at scale. Two failed tasks (one retry, for a flaky download) roll
# back. A container health check would not make this faster: ECS ignores container health checks
# during the service's grace period as it does the load balancer's
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html,
# healthCheckGracePeriodSeconds), and the target group already checks /ready.
FAILED_TASKS_TO_ROLL_BACK = 2
CLEANUP_SOURCE = Path(__file__).parents[1] / "runtime" / "host_cleanup.py"
# Lambda's ceiling; the handler answers CloudFormation a minute before it.
CLEANUP_TIMEOUT = 900


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
    # prefer-cached reuses an image already on the host: safe because our tags are commit SHAs in
    # IMMUTABLE repositories (templates/bootstrap.py), so a tag found in the cache is the image pushed.
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
        # Managed scaling may use the extra instance only while a deploy runs a new task next to the
        # old ones: outside deploys the service never asks for more tasks than the scaling maximum.
        max_size=group_ceiling(stack),
        # ECS managed termination protection needs new instances protected; ECS lifts it when idle.
        group_options={"NewInstancesProtectedFromScaleIn": True},
    )
    cleanup = _add_host_cleanup(stack, shared, group, cluster)
    provider = stack.add(
        ecs.CapacityProvider(
            "CapacityProvider",
            # Deleted before the cleanup runs: ECS stops managing the group before it is force-deleted.
            DependsOn=[cleanup.title],
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
            # The token's own key may be a customer key: decrypt through Secrets Manager, for it only.
            *(secret_readers_by_name([hf_token]) if hf_token else []),
        ],
    )
    task_statements = weight_readers(stack.spec)
    task_statements += shared.key_readers()
    task_role = role(stack, "TaskRole", "ecs-tasks.amazonaws.com", task_statements)
    # The agent and the OS keep the rest. With fallback types the task must fit the smallest of them:
    # ECS places a task only on an instance with the memory it reserves, so on a smaller type it would
    # stay pending while managed scaling kept launching instances (E9038).
    host_gib = min(instance.memory_gib for instance in stack.spec.compute.fleet)
    memory = int(host_gib * 1024 * 0.9) // 256 * 256
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
                            **ecs_parts.drain_environment(STOP_TIMEOUT, engine=True),
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
        failed_tasks_to_roll_back=FAILED_TASKS_TO_ROLL_BACK,
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


def _add_host_cleanup(
    stack: Stack, shared: Shared, group: object, cluster: ecs.Cluster
) -> cloudformation.AWSCustomObject:
    """The custom resource that force-deletes the group on stack delete (see runtime/host_cleanup.py).

    CloudFormation deletes a resource before the resources it depends on
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html), so
    with the capacity provider depending on it and it referring to the group and the cluster, a delete
    runs: service -> capacity provider association -> capacity provider -> this cleanup (group
    force-deleted, stray container instances deregistered) -> group -> launch template -> cluster.
    """
    logs = add_log_group(stack, shared.key_arn, "HostCleanupLogGroup", "host-cleanup")
    group_arn = Sub(
        "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*"
        ":autoScalingGroupName/${Group}",
        Group=Ref(group),
    )
    cleanup_role = role(
        stack,
        "HostCleanupRole",
        "lambda.amazonaws.com",
        [
            statement(["autoscaling:DeleteAutoScalingGroup"], group_arn),
            # Describe* takes no resource-level permissions in EC2 Auto Scaling (service authorization
            # reference), so it is granted on "*".
            statement(["autoscaling:DescribeAutoScalingGroups"], "*"),
            statement(
                ["ecs:DeregisterContainerInstance", "ecs:ListContainerInstances"], GetAtt(cluster, "Arn")
            ),
            log_writer(logs),
        ],
    )
    function = stack.add(
        awslambda.Function(
            "HostCleanupFunction",
            Description=f"Force-deletes the GPU instance group of {stack.name} when the stack is deleted",
            Runtime="python3.13",
            Handler="index.handler",
            Code=awslambda.Code(ZipFile=CLEANUP_SOURCE.read_text(encoding="utf-8")),
            Role=GetAtt(cleanup_role, "Arn"),
            Timeout=CLEANUP_TIMEOUT,
            MemorySize=128,
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(logs)),
        ),
        skip={
            "CKV_AWS_115": "invoked only by CloudFormation, once per stack operation; no concurrency to cap",
            "CKV_AWS_116": "CloudFormation waits for the function's answer and fails the operation "
            "without one",
            "CKV_AWS_117": "it runs while the stack's own VPC (NAT, endpoints) is being deleted; "
            "outside a VPC it always reaches the Auto Scaling API and CloudFormation's response URL",
            "CKV_AWS_173": "the function has no environment variables to encrypt",
            "CKV_AWS_272": "inline code from this repository, reviewed in pull requests; no signing profile",
        },
    )
    return stack.add(
        HostCleanup(
            "HostCleanup",
            ServiceToken=GetAtt(function, "Arn"),
            # CloudFormation's default wait for a custom resource is an hour; the handler needs 15 minutes.
            ServiceTimeout=CLEANUP_TIMEOUT + 60,
            AutoScalingGroupName=Ref(group),
            Cluster=Ref(cluster),
        )
    )


class HostCleanup(cloudformation.AWSCustomObject):
    resource_type = "Custom::HostCleanup"
    props: ClassVar[dict[str, tuple[object, bool]]] = {
        "ServiceToken": (str, True),
        "ServiceTimeout": (int, False),
        "AutoScalingGroupName": (object, True),
        "Cluster": (object, True),
    }


def _autoscaled(stack: Stack) -> bool:
    return stack.spec.scaling.max > stack.spec.scaling.min or bool(stack.spec.scaling.schedules)
