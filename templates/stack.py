"""A deployment's whole stack: the shared building blocks, then its target, then tags and outputs."""

from __future__ import annotations

import json
from collections.abc import Callable

from troposphere import GetAtt, Output, Ref, Template

from templates import dashboard as dashboards
from templates import tags
from templates.context import Stack
from templates.encryption import add_key, key_arn
from templates.gpu_hosts import SPOT_DEREGISTRATION_DELAY_SECONDS
from templates.load_balancer import add_load_balancer
from templates.logs import add_log_group
from templates.network import add_network
from templates.observability import add_alarm_topic, add_budget, add_load_balancer_alarms
from templates.secrets import add_api_key_secret
from templates.smoke_probe import add_smoke_probe
from templates.smoke_probe import wanted as smoke_probe_wanted
from templates.targets import ec2, ecs_fargate, ecs_gpu, sagemaker
from templates.targets.shared import Shared
from tooling.spec import Deployment

# CloudFormation takes at most this many bytes as an inline TemplateBody; larger ones go through S3.
INLINE_LIMIT = 51_200

TARGETS: dict[str, Callable[[Stack, Shared], None]] = {
    "ecs-fargate": ecs_fargate.build,
    "ecs-gpu": ecs_gpu.build,
    "sagemaker": sagemaker.build,
    "ec2": ec2.build,
}
# Interface endpoints a target needs beyond the common ones when the VPC has no NAT way out. The
# SageMaker gateway invokes through the runtime API and checks readiness with DescribeEndpoint, which is
# the SageMaker API's (sagemaker.api), not the runtime's.
EXTRA_ENDPOINTS = {
    "sagemaker": ("sagemaker.api", "sagemaker.runtime"),
    "ecs-gpu": ("ecs", "ecs-agent", "ecs-telemetry"),
}
# GPU targets behind the load balancer: how long a new model server may take to load before it is
# healthy (NoHealthyCapacityAlarm waits that long). SageMaker's endpoint is not behind our ALB.
MODEL_LOAD_SECONDS = {
    "ecs-gpu": ecs_gpu.MODEL_LOAD_GRACE_SECONDS,
    "ec2": ec2.MODEL_LOAD_GRACE_SECONDS,
}
# An ec2 host reports /ready to its group's creation and rolling-update policies with
# cloudformation:SignalResource; in a VPC without NAT only CloudFormation's interface endpoint
# (com.amazonaws.<region>.cloudformation,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/vpc-interface-endpoints.html) carries
# it, or every create and update waits out its signal timeout and rolls back.
SIGNAL_ENDPOINTS = {"ec2": ("cloudformation",)}


def extra_endpoints(spec: Deployment) -> tuple[str, ...]:
    """Interface endpoints the spec's target needs beyond the common ones, when endpoints are made."""
    network = spec.network
    no_nat = network.vpc == "new" and network.nat_gateways == 0
    return EXTRA_ENDPOINTS.get(spec.compute.service, ()) + (
        SIGNAL_ENDPOINTS.get(spec.compute.service, ()) if no_nat else ()
    )


def build(spec: Deployment, environment: str) -> Template:
    stack = Stack(spec, environment)
    template = stack.template
    template.set_version("2010-09-09")
    template.set_description(
        f"deployctl {stack.name}: {spec.description or spec.model.id} ({spec.compute.service})"
    )
    template.set_metadata(
        {"deployctl": {"environment": environment, "deployment": spec.name, "spec_version": 1}}
    )

    key = add_key(stack)
    log_group = add_log_group(stack, key_arn(key))
    network = add_network(stack, key_arn(key), extra_endpoints=extra_endpoints(spec))
    api_key = add_api_key_secret(stack, key_arn(key)) if spec.auth.api_keys else None
    topic = add_alarm_topic(stack, key_arn(key))
    lb = add_load_balancer(
        stack,
        network,
        target_type="instance" if spec.compute.service == "ec2" else "ip",
        # A GPU target only serves once vLLM has loaded the model: /ready says so (/health is the
        # gateway's liveness alone). The ALB routes to a target, and an ECS deployment or a rolling
        # update stops the old copy, only once the new one is healthy
        # (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html).
        health_path="/ready" if spec.compute.service in ("ecs-gpu", "ec2") else "/health",
        **(
            {"deregistration_delay": SPOT_DEREGISTRATION_DELAY_SECONDS}
            if getattr(spec.compute, "spot", False)
            else {}
        ),
    )
    shared = Shared(key_arn(key), log_group, network, lb, topic, api_key)
    if smoke_probe_wanted(stack):
        # Only from inside the VPC can `deployctl smoke` reach an internal load balancer.
        add_smoke_probe(stack, key_arn(key), network, lb)
    TARGETS[spec.compute.service](stack, shared)
    add_load_balancer_alarms(
        stack, lb, topic, model_load_seconds=MODEL_LOAD_SECONDS.get(spec.compute.service)
    )
    add_budget(stack, topic)
    dashboard = dashboards.add_dashboard(stack, lb)

    template.add_output(Output("EndpointUrl", Description="OpenAI base URL: append /v1", Value=lb.url))
    template.add_output(Output("LogGroupName", Value=Ref(log_group)))
    if api_key:
        template.add_output(Output("ApiKeySecretArn", Description="The client API key", Value=api_key.arn))
    template.add_output(Output("AlarmTopicArn", Value=Ref(topic)))
    template.add_output(Output("LoadBalancerArn", Value=Ref(lb.alb)))
    template.add_output(
        Output("LoadBalancerDnsName", Description="Point domain_name here", Value=lb.dns_name)
    )
    template.add_output(
        Output(
            dashboards.OUTPUT,
            Description="The deployment's CloudWatch dashboard",
            Value=dashboards.url(stack, dashboard),
        )
    )
    if spec.compute.service == "sagemaker":
        template.add_output(Output("SageMakerEndpointName", Value=GetAtt("Endpoint", "EndpointName")))
    tags.apply(template, stack.tags())
    return template


def render(template: Template) -> str:
    """Deterministic JSON: sorted keys, fixed indentation, a final newline."""
    return json.dumps(template.to_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def inline_size(template_text: str) -> int:
    """The size CloudFormation counts: the template as the deploy engine sends it (compact JSON)."""
    return len(json.dumps(json.loads(template_text), separators=(",", ":"), sort_keys=True).encode())
