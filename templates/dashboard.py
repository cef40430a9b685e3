"""The deployment's CloudWatch dashboard: traffic, latency, throughput, queueing, capacity, GPU and cost.

One `AWS::CloudWatch::Dashboard` per stack, its body built here for every target from what that target
has: the gateway's own metrics (templates/gateway_metrics.py, dimension set [Stack]), the load
balancer's (AWS/ApplicationELB), and per target ECS (AWS/ECS, ECS/ContainerInsights when the cluster has
Container Insights), the instance group (AWS/AutoScaling, AWS/EC2) or the SageMaker endpoint
(AWS/SageMaker, /aws/sagemaker/Endpoints). Every metric names a resource of this stack, by Ref/GetAtt
through Fn::Sub: the project's cfn-lint rules E9040-E9044 hold the body to that.

Body structure: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
(a JSON string; 0-500 widgets on a 24-column grid; each metric `[Namespace, MetricName, Dim, Value, ...,
{options}]`; `region` per metric widget). The resource:
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-dashboard.html
(DashboardBody updates with no interruption; DashboardName replaces; "all dashboards in your account are
global, not region-specific").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from troposphere import AWSObject, GetAtt, Ref, Sub, cloudwatch, ecs
from troposphere import autoscaling as asg
from troposphere import sagemaker as sm

from templates import gateway_metrics as gw
from templates.context import Stack
from templates.gpu_hosts import GROUP
from templates.load_balancer import LoadBalancer
from templates.targets.sagemaker import VARIANT
from tooling import catalog

LOGICAL_ID = "Dashboard"
OUTPUT = "DashboardUrl"
# Dashboards are global to the account, stacks unique per region: the name carries both, so the same
# deployment in two regions, or two environments, never share (or overwrite) one. Stack names are
# [A-Za-z][-A-Za-z0-9]* (at most 128) and region names [a-z0-9-], within PutDashboard's A-Za-z0-9-_
# and 255 characters. The name never changes for a stack, so CloudFormation never replaces it.
NAME = "${AWS::StackName}-${AWS::Region}"
# The console's own address of a dashboard, per partition (AWS documents no URL scheme; this is the one
# the CloudWatch console shows).
CONSOLE = {
    "aws": "https://${AWS::Region}.console.aws.amazon.com",
    "aws-cn": "https://${AWS::Region}.console.amazonaws.cn",
    "aws-us-gov": "https://console.amazonaws-us-gov.com",
}
URL = "/cloudwatch/home?region=${AWS::Region}#dashboards/dashboard/${Dashboard}"
PERIOD = 60
GRID_COLUMNS = 24
WIDTH, HEIGHT = 12, 6
# Targets where the gateway runs next to vLLM and publishes its gauges (queue, running, KV cache).
ENGINE_TARGETS = ("ecs-gpu", "ec2")
STACK = "${AWS::StackName}"
GATEWAY_DIMENSIONS = ((gw.STACK_DIMENSION, STACK),)
ELB = "AWS/ApplicationELB"
TARGET_GROUP_DIMENSIONS = (("TargetGroup", "${TargetGroup}"), ("LoadBalancer", "${LoadBalancer}"))
LOAD_BALANCER_DIMENSIONS = (("LoadBalancer", "${LoadBalancer}"),)


@dataclass(frozen=True)
class Metric:
    """One row of a metric widget: a metric with its dimensions, or a metric math expression."""

    namespace: str = ""
    name: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str = "Sum"
    label: str = ""
    id: str = ""
    visible: bool = True
    expression: str = ""

    def row(self) -> list[Any]:
        options: dict[str, Any] = {"label": self.label} if self.label else {}
        if self.id:
            options["id"] = self.id
        if self.expression:
            return [{"expression": self.expression, **options}]
        options["stat"] = self.stat
        if not self.visible:
            options["visible"] = False
        return [self.namespace, self.name, *(part for pair in self.dimensions for part in pair), options]


@dataclass(frozen=True)
class Graph:
    title: str
    metrics: tuple[Metric, ...]
    width: int = WIDTH


@dataclass(frozen=True)
class Text:
    markdown: str
    width: int = 8
    height: int = 5


@dataclass(frozen=True)
class Alarms:
    """The state of the stack's own alarms (`${<Alarm>Arn}` variables)."""

    arns: tuple[str, ...]
    width: int = 8
    height: int = 5


@dataclass
class Sources:
    """The stack's resources the dashboard reads metrics of, as Fn::Sub variables."""

    variables: dict[str, Any] = field(default_factory=dict)
    cluster: bool = False
    service: bool = False
    group: bool = False
    endpoint: bool = False
    insights: bool = False
    alarms: tuple[str, ...] = ()


def sources(stack: Stack, lb: LoadBalancer) -> Sources:
    """What the target built: the ECS cluster and service, the instance group, the SageMaker endpoint."""
    found = Sources({"LoadBalancer": lb.full_name, "TargetGroup": lb.target_group_full_name})
    resources = stack.template.resources
    if isinstance(resources.get("Cluster"), ecs.Cluster):
        found.cluster = True
        found.variables["Cluster"] = Ref("Cluster")
        found.insights = stack.spec.observability.container_insights
    if isinstance(resources.get("Service"), ecs.Service):
        found.service = True
        found.variables["Service"] = GetAtt("Service", "Name")
    if isinstance(resources.get(GROUP), asg.AutoScalingGroup):
        found.group = True
        found.variables["Group"] = Ref(GROUP)
    if isinstance(resources.get("Endpoint"), sm.Endpoint):
        found.endpoint = True
        found.variables["Endpoint"] = GetAtt("Endpoint", "EndpointName")
    # The stack's own alarms (not the ones target tracking makes, which CloudWatch names itself).
    alarms = sorted(name for name, r in resources.items() if isinstance(r, cloudwatch.Alarm))
    found.alarms = tuple(f"{name}Arn" for name in alarms)
    found.variables.update({f"{name}Arn": GetAtt(name, "Arn") for name in alarms})
    return found


def _gateway(name: str, stat: str, label: str, **options: Any) -> Metric:
    return Metric(gw.NAMESPACE, name, GATEWAY_DIMENSIONS, stat, label, **options)


def _endpoint_dimensions() -> tuple[tuple[str, str], ...]:
    return (("EndpointName", "${Endpoint}"), ("VariantName", VARIANT))


def _requests(found: Sources) -> list[Graph]:
    by_status = tuple(
        Metric(ELB, f"HTTPCode_Target_{code}_Count", TARGET_GROUP_DIMENSIONS, "Sum", f"gateway {code}")
        for code in ("2XX", "3XX", "4XX", "5XX")
    ) + tuple(
        Metric(ELB, f"HTTPCode_ELB_{code}_Count", LOAD_BALANCER_DIMENSIONS, "Sum", f"load balancer {code}")
        for code in ("4XX", "5XX")
    )
    gateway = (
        _gateway(gw.REQUESTS, "Sum", "requests (gateway)"),
        _gateway(gw.ERRORS, "Sum", "errors (gateway)"),
    )
    if found.endpoint:
        dims = _endpoint_dimensions()
        gateway += (
            Metric("AWS/SageMaker", "Invocations", dims, "Sum", "endpoint invocations"),
            Metric("AWS/SageMaker", "Invocation4XXErrors", dims, "Sum", "endpoint 4xx"),
            Metric("AWS/SageMaker", "Invocation5XXErrors", dims, "Sum", "endpoint 5xx"),
        )
    return [
        Graph("Responses by status (load balancer, count)", by_status),
        Graph(
            "Requests and errors (gateway" + (", endpoint" if found.endpoint else "") + ", count)", gateway
        ),
    ]


def _latency() -> Graph:
    return Graph(
        "Time to first token and whole request, p50/p99 (ms)",
        (
            _gateway(gw.TIME_TO_FIRST_TOKEN, "p50", "first token p50"),
            _gateway(gw.TIME_TO_FIRST_TOKEN, "p99", "first token p99"),
            _gateway(gw.LATENCY, "p50", "request p50"),
            _gateway(gw.LATENCY, "p99", "request p99"),
        ),
    )


def _throughput() -> Graph:
    # Sums over the period divided by its length in seconds: tokens per second whatever the zoom.
    return Graph(
        "Tokens per second (all tasks)",
        (
            _gateway(gw.COMPLETION_TOKENS, "Sum", "", id="completion", visible=False),
            _gateway(gw.PROMPT_TOKENS, "Sum", "", id="prompt", visible=False),
            Metric(expression="completion / PERIOD(completion)", label="completion tokens/s", id="cps"),
            Metric(expression="prompt / PERIOD(prompt)", label="prompt tokens/s", id="pps"),
        ),
    )


def _queue(stack: Stack) -> Graph:
    # The gauges' Average over [Stack] is the average over every task's data points: per task.
    metrics = [
        _gateway(gw.REQUESTS_IN_FLIGHT, "Average", "in flight per task"),
        _gateway(gw.REQUESTS_IN_FLIGHT, "Maximum", "in flight, busiest task"),
    ]
    title = "Requests in flight per task"
    if stack.spec.compute.service in ENGINE_TARGETS:
        metrics += [
            _gateway(gw.ENGINE_REQUESTS_WAITING, "Average", "queued in vLLM per task"),
            _gateway(gw.ENGINE_REQUESTS_WAITING, "Maximum", "queued, busiest task"),
            _gateway(gw.ENGINE_REQUESTS_RUNNING, "Average", "running in vLLM per task"),
        ]
        title = "Queue depth and requests in flight per task"
    else:
        title += " (the engine's queue is not visible to this gateway)"
    return Graph(title, tuple(metrics))


def _capacity(found: Sources) -> Graph:
    metrics = [
        Metric(ELB, "HealthyHostCount", TARGET_GROUP_DIMENSIONS, "Minimum", "healthy targets"),
        Metric(ELB, "UnHealthyHostCount", TARGET_GROUP_DIMENSIONS, "Maximum", "unhealthy targets"),
    ]
    if found.insights and found.service:
        dims = (("ClusterName", "${Cluster}"), ("ServiceName", "${Service}"))
        metrics += [
            Metric("ECS/ContainerInsights", "RunningTaskCount", dims, "Average", "tasks running"),
            Metric("ECS/ContainerInsights", "DesiredTaskCount", dims, "Average", "tasks desired"),
        ]
    if found.group:
        # The group collects its metrics at one-minute granularity (templates/gpu_hosts.py).
        dims = (("AutoScalingGroupName", "${Group}"),)
        metrics += [
            Metric("AWS/AutoScaling", "GroupInServiceInstances", dims, "Average", "instances in service"),
            Metric("AWS/AutoScaling", "GroupDesiredCapacity", dims, "Average", "instances desired"),
        ]
    title = "Tasks and instances running"
    if found.endpoint:
        # SageMaker publishes no instance count of a variant, but each request adds 1/instances to
        # InvocationsPerInstance: the two sums' ratio is the count, for periods with traffic.
        # https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
        dims = _endpoint_dimensions()
        metrics += [
            Metric("AWS/SageMaker", "Invocations", dims, "Sum", id="invocations", visible=False),
            Metric("AWS/SageMaker", "InvocationsPerInstance", dims, "Sum", id="perinstance", visible=False),
            Metric(
                expression="invocations / perinstance",
                label="endpoint instances (from traffic)",
                id="instances",
            ),
        ]
        title = "Gateway targets, endpoint instances (SageMaker publishes no instance count: from traffic)"
    return Graph(title, tuple(metrics))


def _gpu(stack: Stack, found: Sources) -> Graph:
    service = stack.spec.compute.service
    no_agent = "no GPU utilisation: the hosts run no CloudWatch agent with nvidia_smi metrics"
    kv = _gateway(gw.ENGINE_KV_CACHE_USAGE, "Average", "vLLM KV cache used")
    if found.endpoint:
        # GPUUtilization and GPUMemoryUtilization range to 100 times the instance's GPUs.
        dims = _endpoint_dimensions()
        return Graph(
            "GPU use per instance (%, summed over its GPUs)",
            (
                Metric("/aws/sagemaker/Endpoints", "GPUUtilization", dims, "Average", "GPU utilisation"),
                Metric("/aws/sagemaker/Endpoints", "GPUMemoryUtilization", dims, "Average", "GPU memory"),
            ),
        )
    if service == "ecs-gpu":
        return Graph(
            f"GPUs reserved by tasks, KV cache (%); {no_agent}",
            (
                Metric(
                    "AWS/ECS", "GPUReservation", (("ClusterName", "${Cluster}"),), "Average", "GPUs reserved"
                ),
                kv,
            ),
        )
    if service == "ec2":
        return Graph(
            f"Instance CPU, KV cache (%); {no_agent}",
            (
                Metric(
                    "AWS/EC2", "CPUUtilization", (("AutoScalingGroupName", "${Group}"),), "Average", "CPU"
                ),
                kv,
            ),
        )
    dims = (("ClusterName", "${Cluster}"), ("ServiceName", "${Service}"))
    return Graph(
        "Gateway CPU and memory (%); no GPU: the model runs at the external provider",
        (
            Metric("AWS/ECS", "CPUUtilization", dims, "Average", "CPU"),
            Metric("AWS/ECS", "MemoryUtilization", dims, "Average", "memory"),
        ),
    )


def _gateway_cpu(found: Sources) -> Graph | None:
    """The Fargate gateway's own use, in front of a SageMaker endpoint (it scales on CPU)."""
    if not (found.endpoint and found.cluster and found.service):
        return None
    dims = (("ClusterName", "${Cluster}"), ("ServiceName", "${Service}"))
    return Graph(
        "Gateway CPU and memory (%)",
        (
            Metric("AWS/ECS", "CPUUtilization", dims, "Average", "CPU"),
            Metric("AWS/ECS", "MemoryUtilization", dims, "Average", "memory"),
        ),
    )


def cost_markdown(stack: Stack) -> str:
    """The plan's estimate per day, as `deployctl cost` computes it from the checked-in price table."""
    # Imported here: the cost layer reads templates.stack, which imports this module.
    from tooling import cost  # noqa: PLC0415
    from tooling.cost.table import MissingPrice  # noqa: PLC0415

    spec = stack.spec
    try:
        estimate = cost.estimate(spec, stack.environment)
    except MissingPrice as exc:
        return f"## Estimated cost\nNo estimate: {exc}."
    day = 24 / cost.hours_per_month()

    def usd(monthly: float) -> str:
        return cost.format_usd(monthly * day, cents=True)

    def spread(basis: cost.Basis) -> str:
        # Fallback instance types: the day with every instance of the cheapest and of the dearest type.
        low, high = estimate.range(basis)
        return f"; {usd(low)} to {usd(high)} by instance type" if round(low, 2) != round(high, 2) else ""

    lines = [
        "## Estimated cost",
        f"**{usd(estimate.monthly_min_usd)} a day** at scaling.min ({estimate.units_min} × {estimate.unit})"
        + spread("min"),
        f"{usd(estimate.monthly_max_usd)} a day at the most the spec allows ({estimate.units_max})"
        + spread("max"),
    ]
    if spec.scaling.schedules:
        lines.append(f"{usd(estimate.monthly_scheduled_usd)} a day on the schedules" + spread("scheduled"))
    if estimate.budget_usd is not None:
        lines.append(
            f"Budget: {cost.format_usd(estimate.budget_usd)} a month ({usd(estimate.budget_usd)} a day)"
        )
    lines.append(f"Estimate, not a bill: `deployctl cost`, {cost.prices_note()}.")
    return "\n\n".join(lines)


def _header(stack: Stack) -> str:
    spec = stack.spec
    return (
        f"# {stack.name}\n\n{spec.model.id} on {spec.compute.service}, {stack.environment}, "
        f"{spec.region}.\n\n"
        # The spec's file may end in .yaml or .yml; the stack knows its environment and name only.
        f"Made by deployctl from the spec `{spec.name}` in `deployments/{stack.environment}/`: changes "
        "made here are replaced at the next deploy."
    )


def widgets(stack: Stack, found: Sources) -> list[Graph | Text | Alarms]:
    items: list[Graph | Text | Alarms] = [Text(_header(stack))]
    if found.alarms:
        items.append(Alarms(found.alarms))
    items.append(Text(cost_markdown(stack), width=8 if found.alarms else 16))
    items += _requests(found)
    items += [_latency(), _throughput(), _queue(stack), _capacity(found), _gpu(stack, found)]
    extra = _gateway_cpu(found)
    if extra is not None:
        items.append(extra)
    return items


def body(stack: Stack, found: Sources) -> str:
    """The DashboardBody as Fn::Sub text: compact JSON, widgets laid out left to right, top to bottom."""
    laid_out, x, y, row_height = [], 0, 0, 0
    for item in widgets(stack, found):
        height = HEIGHT if isinstance(item, Graph) else item.height
        if x + item.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append({**_widget(item), "x": x, "y": y, "width": item.width, "height": height})
        x, row_height = x + item.width, max(row_height, height)
    text = json.dumps(
        {"start": "-PT6H", "periodOverride": "inherit", "widgets": laid_out}, separators=(",", ":")
    )
    # Literal `${` in text would be read as a Sub variable: `${!` writes it (none of ours is meant as one,
    # but a spec's names are not ours). The sentinels become the variables afterwards.
    # json.dumps writes the sentinels as \\u0001 and \\u0002 escapes.
    return text.replace("${", "${!").replace("\\u0001", "${").replace("\\u0002", "}")


def _sub(value: str) -> str:
    """`${Var}` written with sentinels, so that body() can escape every other `${` first."""
    return value.replace("${", "\u0001").replace("}", "\u0002") if "${" in value else value


def _widget(item: Graph | Text | Alarms) -> dict[str, Any]:
    if isinstance(item, Text):
        return {"type": "text", "properties": {"markdown": item.markdown}}
    if isinstance(item, Alarms):
        arns = [_sub("${" + name + "}") for name in item.arns]
        return {
            "type": "alarm",
            "properties": {"title": "Alarms", "alarms": arns, "sortBy": "stateUpdatedTimestamp"},
        }
    rows = []
    for metric in item.metrics:
        row = metric.row()
        rows.append([_sub(part) if isinstance(part, str) else part for part in row])
    # A line graph (the default view) from zero; the unit is in the title.
    properties: dict[str, Any] = {
        "title": item.title,
        "region": _sub("${AWS::Region}"),
        "period": PERIOD,
        "metrics": rows,
        "yAxis": {"left": {"min": 0}},
    }
    return {"type": "metric", "properties": properties}


def add_dashboard(stack: Stack, lb: LoadBalancer) -> cloudwatch.Dashboard:
    found = sources(stack, lb)
    text = body(stack, found)
    used = {name: value for name, value in found.variables.items() if "${" + name + "}" in text}
    return stack.add(
        cloudwatch.Dashboard(
            LOGICAL_ID,
            DashboardName=Sub(NAME),
            DashboardBody=Sub(text, **used) if used else Sub(text),
        )
    )


def url(stack: Stack, dashboard: AWSObject) -> Sub:
    partition = catalog.regions().get(stack.spec.region, "aws")
    return Sub(CONSOLE.get(partition, CONSOLE["aws"]) + URL, Dashboard=Ref(dashboard))
