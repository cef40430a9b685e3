"""`ecs-fargate`: the gateway on Fargate in front of an external OpenAI-compatible provider."""

from __future__ import annotations

from troposphere import Ref

from templates import ecs as ecs_parts
from templates.context import Stack
from templates.fargate import GatewaySize, add_gateway_service
from templates.iam import secret_readers_by_name, secret_value_from
from templates.load_balancer import IDLE_TIMEOUT_SECONDS
from templates.targets.shared import Shared


def build(stack: Stack, shared: Shared) -> None:
    spec = stack.spec
    compute, engine = spec.compute, spec.engine
    provider_secret = engine.provider_key_secret
    add_gateway_service(
        stack,
        cluster=ecs_parts.add_cluster(stack),
        network=shared.network,
        lb=shared.lb,
        log_group=shared.log_group,
        size=GatewaySize(compute.cpu, compute.memory, compute.architecture, compute.ephemeral_storage_gib),
        environment={
            "GATEWAY_UPSTREAM": "external",
            "GATEWAY_UPSTREAM_URL": engine.base_url,
            "GATEWAY_SERVED_MODEL": spec.model.served_model_name,
            "GATEWAY_UPSTREAM_MODEL": spec.model.id,
            # A provider may think for minutes before its first token: wait as long as the ALB would
            # keep the client's connection open, and no longer.
            "GATEWAY_UPSTREAM_TIMEOUT": str(IDLE_TIMEOUT_SECONDS),
            "AWS_REGION": Ref("AWS::Region"),
            **shared.gateway_environment(),
        },
        # The provider key reaches the container through ECS, read by the execution role at start;
        # the gateway's own role never sees it and it is never in the template.
        secrets={"GATEWAY_PROVIDER_KEY": secret_value_from(provider_secret)},
        # The execution role resolves the ECS secret, so it also decrypts the key that encrypts it.
        execution_statements=secret_readers_by_name([provider_secret]),
        task_statements=shared.key_readers(),
        minimum=spec.scaling.min,
        maximum=spec.scaling.max,
    )
