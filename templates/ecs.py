"""ECS pieces both ECS targets share: the cluster, the gateway container, the service behind the ALB."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Join, Ref, ecs

from templates.context import Stack
from templates.load_balancer import GATEWAY_PORT, LoadBalancer
from templates.network import Network

CONTAINER = "gateway"

# Streams in flight when a task is stopped (scale-in, a deploy, Spot, an instance draining): the stacks
# DRAIN them rather than set ECS task scale-in protection ($ECS_AGENT_URI/task-protection/v1/state,
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html).
# Why: protection keeps a task from scale-in and from deployments while it is set, and behind a load
# balancer that spreads streams over every task, under load every task has one in flight nearly all the
# time, so the scaler could never remove a task and a deploy would wait out each protection's expiry;
# it also does nothing for Spot interruptions or instance draining, and costs an agent call each time a
# task goes from idle to busy. The drain covers every stop the same way, with no call: ECS deregisters
# the task from the target group, the ALB sends it no new request while in-flight ones continue for the
# deregistration delay (templates/load_balancer.py), and only once the target is unused does ECS send
# SIGTERM, then SIGKILL after the container's StopTimeout
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/load-balancer-connection-draining.html).
# After SIGTERM the gateway stops accepting and lets what is left finish for GATEWAY_SHUTDOWN_GRACE;
# beside an engine the image's supervisor gives the gateway, then vLLM, SUPERVISOR_GRACE each. Both are
# derived here from the StopTimeout so that they always fit inside it (cfn-lint rule E9031 checks).
DRAIN_MARGIN_SECONDS = 10


def drain_environment(stop_timeout: int, *, engine: bool) -> dict[str, str]:
    """The gateway's (and the supervisor's) shutdown graces that end before ECS's SIGKILL."""
    if not engine:
        return {"GATEWAY_SHUTDOWN_GRACE": str(stop_timeout - DRAIN_MARGIN_SECONDS)}
    # The supervisor stops the gateway first (its streams still need vLLM), then vLLM: two graces.
    supervisor = (stop_timeout - DRAIN_MARGIN_SECONDS) // 2
    return {
        "SUPERVISOR_GRACE": str(supervisor),
        # Below the supervisor's wait, so the gateway ends its own drain instead of being killed in it.
        "GATEWAY_SHUTDOWN_GRACE": str(supervisor - DRAIN_MARGIN_SECONDS // 2),
    }


def add_cluster(stack: Stack) -> ecs.Cluster:
    insights = stack.spec.observability.container_insights
    return stack.add(
        ecs.Cluster(
            "Cluster",
            ClusterSettings=[
                ecs.ClusterSetting(Name="containerInsights", Value="enabled" if insights else "disabled")
            ],
        ),
        skip=None if insights else {"CKV_AWS_65": "observability.container_insights is false in the spec"},
    )


def log_configuration(stack: Stack, log_group: Any, prefix: str) -> ecs.LogConfiguration:
    return ecs.LogConfiguration(
        LogDriver="awslogs",
        Options={
            "awslogs-group": Ref(log_group),
            "awslogs-region": Ref("AWS::Region"),
            "awslogs-stream-prefix": prefix,
            # A blocked log pipe must never stall token streaming.
            "mode": "non-blocking",
            "max-buffer-size": "25m",
        },
    )


def environment(values: dict[str, Any]) -> list[ecs.Environment]:
    return [ecs.Environment(Name=k, Value=v) for k, v in sorted(values.items())]


def container_health_check(path: str = "/health", start_period: int = 30) -> ecs.HealthCheck:
    probe = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{GATEWAY_PORT}{path}', timeout=4)"
    return ecs.HealthCheck(
        Command=["CMD", "python", "-c", probe],
        Interval=15,
        Timeout=5,
        Retries=3,
        StartPeriod=start_period,
    )


def add_service(
    stack: Stack,
    *,
    cluster: ecs.Cluster,
    task: ecs.TaskDefinition,
    network: Network,
    lb: LoadBalancer,
    grace_seconds: int,
    launch: dict[str, Any],
    autoscaled: bool,
    desired: int,
    failed_tasks_to_roll_back: int | None = None,
) -> ecs.Service:
    """The service behind the ALB; `failed_tasks_to_roll_back` replaces the circuit breaker's default
    threshold, max(3, min(200, 0.5 x desired)) failed tasks
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ThresholdConfiguration.html)."""
    breaker: dict[str, Any] = {}
    if failed_tasks_to_roll_back is not None:
        breaker["ThresholdConfiguration"] = ecs.ThresholdConfiguration(
            Type="COUNT", Value=failed_tasks_to_roll_back
        )
    return stack.add(
        ecs.Service(
            "Service",
            DependsOn=[lb.listener.title],
            Cluster=Ref(cluster),
            TaskDefinition=Ref(task),
            # With autoscaling, CloudFormation must not reset the count the scaler chose on every update.
            **({} if autoscaled else {"DesiredCount": desired}),
            NetworkConfiguration=ecs.NetworkConfiguration(
                AwsvpcConfiguration=ecs.AwsvpcConfiguration(
                    AssignPublicIp="DISABLED",
                    Subnets=network.private_subnets,
                    SecurityGroups=[Ref(network.workload_group)],
                )
            ),
            LoadBalancers=[
                ecs.LoadBalancer(
                    ContainerName=CONTAINER, ContainerPort=GATEWAY_PORT, TargetGroupArn=Ref(lb.target_group)
                )
            ],
            HealthCheckGracePeriodSeconds=grace_seconds,
            DeploymentConfiguration=ecs.DeploymentConfiguration(
                DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True, **breaker),
                MinimumHealthyPercent=100,
                MaximumPercent=200,
            ),
            PropagateTags="SERVICE",
            EnableECSManagedTags=True,
            EnableExecuteCommand=False,
            **launch,
        )
    )


def service_resource_id(cluster: ecs.Cluster, service: ecs.Service) -> Join:
    """Application Auto Scaling names an ECS service `service/<cluster>/<service>`."""
    return Join("/", ["service", Ref(cluster), GetAtt(service, "Name")])
