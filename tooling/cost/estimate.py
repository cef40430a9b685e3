"""Monthly cost estimates for deployments, from the price table in `tooling/data/prices.yaml`.

Pure and deterministic: no network, no clock, no AWS Pricing API (the table is what
`deployctl prices refresh` read from it). A month is 730 hours (AWS's own convention, 8760 / 12).
Every price is the deployment region's own; a service price the table lacks for that region is taken
from us-east-1 and the estimate says so.

Three figures per deployment, each broken down by component:

- **minimum**: `scaling.min` instances or tasks all month, the floor the spec promises to pay for;
- **maximum**: the most the spec can ask for (`scaling.max`, or a schedule's larger `max`) all month;
- **scheduled**: the capacity the schedules keep in force hour by hour (see `capacity_hours`).

Only what a stack creates is priced: compute, EBS root volumes, the ALB (hours and LCUs), public IPv4
addresses (NAT gateways' Elastic IPs, an internet-facing ALB's nodes), NAT gateways (hours and the
data they process, launch traffic included), data transfer out, interface VPC endpoints, CloudWatch
Logs, Container Insights metrics, alarms, the API key secret, the KMS key and the ECR images it runs.
Every figure that rests on an assumption (traffic, log volume, image and weight sizes, launches, Spot
discount) says so, with its number, in `Estimate.assumptions`.

GPU hosts with fallback types (`compute.instance_types`) are priced at the first, the one the group
launches on demand while EC2 has it; `Estimate.ranges` holds each figure with every instance of the
cheapest type and of the dearest, since which one runs is up to EC2's capacity. With `spot`, the first
`on_demand_base` instances in force are on-demand and the rest Spot, hour by hour for the scheduled figure.

Public API (the CLI, validation and plan call these):

    estimate(spec, environment) -> Estimate
    estimate_all(deployments) -> list[Estimate]          # repository.Deployments or DeploymentFiles
    capacity_hours(scaling) -> dict[int, float]          # monthly hours at each scheduled capacity
    launches_per_month(scaling, units, basis) -> float   # instance or task starts a month
    to_text(estimates, today) -> rich renderable; to_markdown(estimates, today) -> str; to_json(estimates)
    totals(estimates) -> dict                            # per environment and overall
    delta(before, after, basis="min") -> float; format_delta(before_usd, after_usd) -> str
    format_usd(amount, cents=False) -> str; prices_note(today) -> str
    over_budget(estimate, spec=None) -> str | None
    Estimate.monthly(basis) -> float; Estimate.to_dict() -> dict   # one deployment of the JSON
    prices(), instance_price(type, region), fargate_task_hour(compute, region), week_firings(cron)

This module imports neither `tooling.repository` nor `tooling.validation`, so validation may import it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rich.console import Group
from rich.table import Table
from rich.text import Text

from templates.stack import extra_endpoints
from tooling import cron
from tooling.cost import table as price_table
from tooling.cost.table import MissingPrice, prices
from tooling.spec import Deployment, FargateCompute, Scaling

# The order components are listed in everywhere; every estimate carries all of them (0.0 when the
# stack does not create the thing), so plan diffs and JSON consumers see a stable shape.
COMPONENTS = (
    "compute",
    "gateway",
    "ebs",
    "load_balancer",
    "public_ipv4",
    "nat_gateway",
    "nat_data",
    "data_transfer_out",
    "vpc_endpoints",
    "logs",
    "container_insights",
    "alarms",
    "secrets",
    "kms",
    "ecr",
)
COMPONENT_LABELS = {
    "compute": "Compute",
    "gateway": "Gateway (Fargate)",
    "ebs": "EBS gp3 volumes",
    "load_balancer": "Load balancer (hours, LCUs)",
    "public_ipv4": "Public IPv4 addresses",
    "nat_gateway": "NAT gateways (hours)",
    "nat_data": "NAT data (launches, egress)",
    "data_transfer_out": "Data transfer out",
    "vpc_endpoints": "VPC endpoints",
    "logs": "CloudWatch Logs",
    "container_insights": "Container Insights",
    "alarms": "CloudWatch alarms",
    "secrets": "Secrets Manager",
    "kms": "KMS key",
    "ecr": "ECR images",
}
NOT_PRICED = (
    "not priced: API requests (Secrets Manager, KMS, SageMaker, ECR), the gateway's own EMF metrics, "
    "SNS, the ALB access-log bucket, AWS Budgets, cross-AZ traffic, the account-wide free tiers "
    "(100 GB a month of data transfer out), taxes and discounts (Savings Plans, Reserved)"
)

# ---- assumptions: each one is named, with its number, in the estimate's assumptions.
# Interface endpoints per service, mirroring templates/network.py and templates/stack.py; the S3
# gateway endpoint is free and (since the shared stacks make it always present in VPCs we create)
# carries ECR image layers and s3:// weights, so those never cross the NAT gateway.
COMMON_ENDPOINTS = 4
NEW_VPC_AZS = 2
# An ALB has at least one node, so one public IPv4 address, per enabled AZ; it may add nodes under load.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html
ALB_MIN_NODES = 2
# The SageMaker target's gateway (templates/targets/sagemaker.py): 1 vCPU, 2 GiB, arm64, 21 GiB storage;
# 2 tasks in prod (1 elsewhere), at most max(4, scaling.max), and not on the spec's schedules.
SAGEMAKER_GATEWAY = FargateCompute(service="ecs-fargate", cpu=1024, memory=2048, architecture="arm64")
# Spot is not one price: it moves by type, AZ and hour. Priced as this share of on-demand (60 % off), a
# typical long-run figure for g4dn/g5/g6 in us-east-1; not a quote.
SPOT_FACTOR = 0.40
# Traffic through the load balancer per instance or task in force: prompts in and answers out.
TRAFFIC_GB_PER_UNIT_HOUR = 0.1
OUT_SHARE = 0.5  # the share of that traffic that is answers going out
# LCUs: a floor for health checks and idle connections, plus processed bytes (1 LCU = 1 GB an hour for
# instance and IP targets), taken as a sum of the two although AWS bills the largest dimension.
# https://aws.amazon.com/elasticloadbalancing/pricing/
ALB_BASE_LCUS = 0.5
# Every instance start downloads the weights from Hugging Face through NAT (bf16: 2 bytes a parameter,
# read from the model id's size, e.g. "8B"); ECR API calls through NAT when there are no interface
# endpoints. Starts: releases and replacements relaunch each instance this often a month, plus every
# scheduled raise of the floor, plus (at maximum scale) a daily scale-out from the floor to max.
BYTES_PER_PARAMETER = 2
DEFAULT_WEIGHTS_GB = 20.0
ECR_API_GB_PER_LAUNCH = 0.01
RELAUNCHES_PER_UNIT_MONTH = 2
# CloudWatch Logs: each instance or task writes this many GB a month, plus a base for the deployment.
LOGS_GB_PER_UNIT_MONTH = 2.0
LOGS_BASE_GB_MONTH = 0.5
# Container Insights (ECS, containerInsights enabled): custom metrics of the cluster and its service in
# ECS/ContainerInsights, and performance log events per task.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html
INSIGHTS_METRICS = 25
INSIGHTS_LOG_GB_PER_UNIT_MONTH = 0.1
# Alarms, as templates/observability.py and templates/autoscaling.py create them: the 5xx rate alarm
# reads 3 metrics, latency and unhealthy hosts 1 each, no healthy capacity 1 (GPU targets that never
# scale to zero); each target-tracking policy makes 2 alarms (scale out and in). Billed per metric.
LB_ALARM_METRICS = 5
# Compressed image sizes stored in ECR, one version each.
IMAGE_GB = {"gateway": 0.2, "vllm": 10.0}

Basis = Literal["min", "max", "scheduled"]


# ---------------------------------------------------------------- the price table


def hours_per_month() -> float:
    return float(prices()["hours_per_month"])


def _service(region: str, key: str, used: dict[str, price_table.Price] | None = None) -> float:
    price = price_table.lookup(region, "services", key)
    if used is not None:
        used[key] = price
    return price.usd


def instance_price(instance_type: str, region: str = "us-east-1") -> float:
    """On-demand USD per hour in `region` for an EC2 or SageMaker (ml.*) GPU instance type."""
    section = "sagemaker" if instance_type.startswith("ml.") else "ec2"
    return price_table.lookup(region, section, instance_type).usd


def fargate_task_hour(
    compute: FargateCompute, region: str = "us-east-1", used: dict[str, price_table.Price] | None = None
) -> float:
    """USD per task-hour: vCPU and memory by architecture, storage above the free 20 GB."""
    arch = compute.architecture
    # AWS bills Fargate memory and storage per GB; the spec's MiB and GiB are taken as GB / 1024 and GB.
    vcpus, memory_gb = compute.cpu / 1024, compute.memory / 1024
    extra_storage = max(0, compute.ephemeral_storage_gib - 20)
    cost = vcpus * _service(region, f"fargate_{arch}_vcpu_hour", used) + memory_gb * _service(
        region, f"fargate_{arch}_gb_hour", used
    )
    if extra_storage:
        cost += extra_storage * _service(region, "fargate_ephemeral_gb_hour", used)
    return cost


def price_age_days(today: dt.date) -> int:
    return price_table.age_days(today)


def prices_note(today: dt.date | None = None) -> str:
    """Where the prices come from and how old they are: what `deployctl cost` and the plan print."""
    table = prices()
    age = price_table.age_text(today) if today else f"prices as of {table['as_of']}"
    source = table["source"]
    if str(table.get("provenance", "")).startswith("replayed"):
        # A table regenerated from recorded responses was not read from AWS: say so wherever it prints.
        source = (
            "replayed from recorded public AWS-derived data, not yet read from AWS "
            "(see the table's provenance)"
        )
    return f"{age}: {source}"


# ---------------------------------------------------------------- schedules

MINUTES_PER_WEEK = 7 * 24 * 60
_DAY_NAMES = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def _expand(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """The values a cron field (`*`, lists, ranges, steps, names) selects within low..high."""
    names = names or {}

    def value(token: str) -> int:
        return int(token) if token.isdigit() else names[token.upper()]

    selected: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = value(first), value(last)
        else:
            start = value(base)
            # `5/15` means from 5 to the end of the range, every 15.
            end = high if step_text else start
        if start <= end:
            selected.update(range(start, end + 1, step))
        else:
            # A range that wraps, such as FRI-MON, runs past the end back to the start.
            span = list(range(start, high + 1)) + list(range(low, end + 1))
            selected.update(span[::step])
    return selected


def week_firings(expression: str) -> list[int] | None:
    """The minutes of a reference week (Sunday 00:00 UTC = 0) at which an AWS cron expression fires.

    None when the expression picks days of the month (numbers, L, W) or the nth / last weekday of the
    month (# and L in day-of-week): such schedules fire a few times a month and have no place in a
    week. Month and year restrictions are ignored (the schedule counts as firing every week).
    """
    minutes, hours, day_of_month, _month, day_of_week, _year = cron.normalise(expression).split(" ")
    if day_of_month not in ("?", "*") or any(mark in day_of_week for mark in ("L", "#")):
        return None
    days = set(range(1, 8)) if day_of_week in ("?", "*") else _expand(day_of_week, 1, 7, _DAY_NAMES)
    return sorted(
        (day - 1) * 1440 + hour * 60 + minute
        for day in days
        for hour in _expand(hours, 0, 23)
        for minute in _expand(minutes, 0, 59)
    )


def _calendar_restricted(expression: str) -> bool:
    fields = cron.normalise(expression).split(" ")
    return fields[3] != "*" or fields[5] != "*"


def capacity_hours(scaling: Scaling) -> dict[int, float]:
    """Hours a month at each capacity the schedules keep in force; sums to 730.

    The model: a reference week, at minute resolution, repeated 730 / 168 times (4.345 weeks a month).
    Each schedule fires at the minutes its cron minute, hour and day-of-week fields select (UTC), and
    from then on the capacity in force is that schedule's `min` — the floor autoscaling keeps with no
    load (the spec guarantees 0 <= min <= max, so no clamping is needed); `max` only bounds scale-out,
    so it does not enter this figure, which is why "scheduled" can only be a floor. Before the first
    firing of the week, the week's last firing is still in force (the week repeats). Two schedules firing
    in the same minute apply in list order, so the later one wins.

    Schedules the week cannot place (day-of-month, L, W, #: see `week_firings`) are left out, and month
    or year restrictions are ignored; `estimate` lists both in its assumptions. With no placeable
    schedule, `scaling.min` is in force all month.

    The dev example, nights `0 20 ? * MON-FRI *` to 0 and mornings `0 7 ? * MON-FRI *` to 1: on
    07:00-20:00 on weekdays = 13 h x 5 = 65 h a week; off the four weekday nights (11 h each) and the
    weekend from Friday 20:00 to Monday 07:00 (59 h), 103 h. So 65 x 730/168 = 282.44 h a month at 1.
    """
    events = sorted(
        (minute, index, schedule.min)
        for index, schedule in enumerate(scaling.schedules)
        for minute in (week_firings(schedule.cron) or [])
    )
    month = hours_per_month()
    if not events:
        return {scaling.min: month}
    weeks_per_month = month / (MINUTES_PER_WEEK / 60)
    minutes_at: dict[int, int] = defaultdict(int)
    # Before the first firing, the last one of the previous (identical) week holds.
    minutes_at[events[-1][2]] += events[0][0]
    for (start, _, capacity), following in zip(events, [*events[1:], (MINUTES_PER_WEEK, 0, 0)], strict=True):
        minutes_at[capacity] += following[0] - start
    return {
        capacity: minutes / 60 * weeks_per_month
        for capacity, minutes in sorted(minutes_at.items())
        if minutes
    }


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class Estimate:
    """A deployment's monthly cost in USD. `components` is at minimum scale; all three dicts have every
    key of COMPONENTS, rounded to cents, and each monthly_* figure is the sum of its dict. `unpriced`
    names what the table has no price for (counted as 0, and said so)."""

    environment: str
    name: str
    stack_name: str
    region: str
    service: str
    unit: str  # what one instance or task is, e.g. "g5.xlarge spot"
    monthly_min_usd: float
    monthly_max_usd: float
    monthly_scheduled_usd: float
    components: dict[str, float]
    components_max: dict[str, float]
    components_scheduled: dict[str, float]
    units_min: int
    units_max: int
    units_scheduled: float  # time-weighted average over the month
    budget_usd: float | None = None
    assumptions: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    # basis -> (low, high): the monthly figure with every instance of the cheapest and of the dearest
    # instance type; both equal the figure itself with one type.
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def range(self, basis: Basis = "min") -> tuple[float, float]:
        figure = self.monthly(basis)
        return self.ranges.get(basis, (figure, figure))

    def monthly(self, basis: Basis = "min") -> float:
        return {
            "min": self.monthly_min_usd,
            "max": self.monthly_max_usd,
            "scheduled": self.monthly_scheduled_usd,
        }[basis]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "name": self.name,
            "stack_name": self.stack_name,
            "region": self.region,
            "service": self.service,
            "unit": self.unit,
            "monthly_min_usd": self.monthly_min_usd,
            "monthly_max_usd": self.monthly_max_usd,
            "monthly_scheduled_usd": self.monthly_scheduled_usd,
            "components": dict(self.components),
            "components_max": dict(self.components_max),
            "components_scheduled": dict(self.components_scheduled),
            "units": {"min": self.units_min, "max": self.units_max, "scheduled": self.units_scheduled},
            "budget_usd": self.budget_usd,
            "over_budget": over_budget(self),
            "assumptions": list(self.assumptions),
            "unpriced": list(self.unpriced),
            "monthly_range_usd": {b: list(self.range(b)) for b in ("min", "max", "scheduled")},
        }


def _unit(spec: Deployment) -> str:
    compute = spec.compute
    if isinstance(compute, FargateCompute):
        return f"{compute.cpu / 1024:g} vCPU / {compute.memory / 1024:g} GiB {compute.architecture}"
    return getattr(compute, "label", None) or compute.instance_type


def instance_hours(spec: Deployment, units: float, basis: Basis) -> tuple[float, float]:
    """(on-demand, Spot) instance-hours a month for `units` in force (the schedules' hours for the
    scheduled figure): Spot is what runs above `on_demand_base`, the group's OnDemandBaseCapacity."""
    compute, month = spec.compute, hours_per_month()
    if not getattr(compute, "spot", False):
        return units * month, 0.0
    base = compute.on_demand_base
    if basis == "scheduled":
        # The base counts instances in force, so it splits each scheduled capacity, not their average.
        in_force = capacity_hours(spec.scaling)
        on_demand = sum(min(capacity, base) * h for capacity, h in in_force.items())
        return on_demand, sum(capacity * h for capacity, h in in_force.items()) - on_demand
    return min(units, base) * month, max(0.0, units - base) * month


_PARAMETERS = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)[Bb](?![a-zA-Z])")


def weights_gb(spec: Deployment) -> float | None:
    """GB of weights each start downloads through NAT: None when they come from S3 (the S3 gateway
    endpoint) or there are none (external engine)."""
    if spec.engine.type != "vllm" or spec.model.id.startswith("s3://"):
        return None
    named = named_weights_gb(spec.model.id)
    return DEFAULT_WEIGHTS_GB if named is None else named


def named_weights_gb(model_id: str) -> float | None:
    """GB of 16-bit weights from the parameter count in the model's name ("...-7B-..."), None without one."""
    sizes = [float(m) for m in _PARAMETERS.findall(model_id.rstrip("/").rsplit("/", 1)[-1])]
    return max(sizes) * BYTES_PER_PARAMETER if sizes else None


def scheduled_launches_per_month(scaling: Scaling) -> float:
    """Starts a month the schedules cause: each firing that raises the floor starts the difference."""
    events = sorted(
        (minute, index, schedule.min)
        for index, schedule in enumerate(scaling.schedules)
        for minute in (week_firings(schedule.cron) or [])
    )
    if not events:
        return 0.0
    current, raised = events[-1][2], 0
    for _, _, floor in events:
        raised += max(0, floor - current)
        current = floor
    return raised * hours_per_month() / (MINUTES_PER_WEEK / 60)


def launches_per_month(scaling: Scaling, units: float, basis: Basis) -> float:
    """Instance or task starts a month: relaunches of the units in force, scheduled raises, and at
    maximum scale a daily scale-out from the floor to `units`."""
    starts = RELAUNCHES_PER_UNIT_MONTH * units + scheduled_launches_per_month(scaling)
    if basis == "max":
        starts += max(0.0, units - scaling.min) * hours_per_month() / 24
    return starts


@dataclass
class _Priced:
    costs: dict[str, float]
    used: dict[str, price_table.Price]
    unpriced: list[str]
    compute_range: tuple[float, float] | None = None  # compute with the cheapest and the dearest type


def _alarm_metrics(spec: Deployment) -> int:
    scaling = spec.scaling
    scales_to_zero = scaling.min == 0 or any(s.min == 0 for s in scaling.schedules)
    gpu_alarm = spec.compute.service in ("ecs-gpu", "ec2") and not scales_to_zero
    targets = [v for _, v in scaling.target] if scaling.target else []
    return LB_ALARM_METRICS + int(gpu_alarm) + 2 * sum(v is not None for v in targets)


def _public_ipv4(spec: Deployment) -> int:
    network = spec.network
    addresses = network.nat_gateways if network.vpc == "new" else 0
    if network.public:
        azs = NEW_VPC_AZS if network.vpc == "new" else len(set(network.public_subnets))
        addresses += max(ALB_MIN_NODES, azs)
    return addresses


def _components(spec: Deployment, units: float, gateway_tasks: int, basis: Basis) -> _Priced:
    """Monthly USD per component in the deployment's region, for `units` instances or tasks in force
    all month (an average, for the scheduled figure)."""
    region, hours = spec.region, hours_per_month()
    compute, network = spec.compute, spec.network
    costs = dict.fromkeys(COMPONENTS, 0.0)
    used: dict[str, price_table.Price] = {}
    unpriced: list[str] = []

    def svc(key: str) -> float:
        return _service(region, key, used)

    compute_range = None
    if isinstance(compute, FargateCompute):
        costs["compute"] = fargate_task_hour(compute, region, used) * hours * units
    else:
        on_demand, spot = instance_hours(spec, units, basis)
        monthly: list[float] = []
        for name in getattr(compute, "types", None) or (compute.instance_type,):
            try:
                rate = instance_price(name, region)
            except MissingPrice:
                unpriced.append(f"{name} in {region}")
                continue
            monthly.append(on_demand * rate + spot * rate * SPOT_FACTOR)
            if len(monthly) == 1 and not unpriced:
                costs["compute"] = monthly[0]  # the first choice
        if len(monthly) > 1 or (monthly and unpriced):
            compute_range = (min(monthly), max(monthly))
    if compute.service == "sagemaker":
        costs["gateway"] = fargate_task_hour(SAGEMAKER_GATEWAY, region, used) * hours * gateway_tasks
    if compute.service in ("ecs-gpu", "ec2"):
        # Root volumes are deleted with their instance, so they cost only while instances run.
        costs["ebs"] = compute.volume_gib * svc("ebs_gp3_gb_month") * units

    serving = units + gateway_tasks
    traffic_gb = TRAFFIC_GB_PER_UNIT_HOUR * hours * serving
    lcus = ALB_BASE_LCUS + TRAFFIC_GB_PER_UNIT_HOUR * serving
    costs["load_balancer"] = (svc("alb_hour") + lcus * svc("alb_lcu_hour")) * hours
    costs["public_ipv4"] = _public_ipv4(spec) * svc("public_ipv4_hour") * hours

    out_gb = traffic_gb * OUT_SHARE if network.public else 0.0
    nat_gb = 0.0
    # Interface endpoints exist in a VPC we own, or in another one only with endpoint_private_dns.
    interface_endpoints = network.vpc_endpoints and (network.vpc == "new" or network.endpoint_private_dns)
    if network.vpc == "new" and network.nat_gateways:
        costs["nat_gateway"] = svc("nat_gateway_hour") * hours * network.nat_gateways
        if spec.engine.type == "external":
            # Every prompt goes out to the provider and every answer comes back through NAT.
            nat_gb += traffic_gb
            out_gb += traffic_gb * (1 - OUT_SHARE)
        weights = weights_gb(spec) or 0.0
        per_launch = weights + (0.0 if interface_endpoints else ECR_API_GB_PER_LAUNCH)
        if spec.engine.type == "vllm":
            nat_gb += launches_per_month(spec.scaling, units, basis) * per_launch
        costs["nat_data"] = nat_gb * svc("nat_gateway_gb")
    costs["data_transfer_out"] = out_gb * svc("data_transfer_out_gb")

    logs_gb = LOGS_BASE_GB_MONTH + LOGS_GB_PER_UNIT_MONTH * serving
    insights = spec.observability.container_insights and compute.service in ("ecs-gpu", "ecs-fargate")
    if insights:
        logs_gb += INSIGHTS_LOG_GB_PER_UNIT_MONTH * units
        costs["container_insights"] = INSIGHTS_METRICS * svc("metric_month")
    if interface_endpoints:
        endpoints = COMMON_ENDPOINTS + len(extra_endpoints(spec))
        # One network interface per AZ: two for a new VPC, one per listed private subnet otherwise.
        azs = NEW_VPC_AZS if network.vpc == "new" else len(set(network.private_subnets))
        # Logs reach CloudWatch through the logs endpoint, which bills the GB it processes.
        costs["vpc_endpoints"] = svc("vpc_endpoint_hour") * hours * endpoints * azs
        costs["vpc_endpoints"] += logs_gb * svc("vpc_endpoint_gb")
    # At steady state the group holds retention_days worth of ingestion: days / (730 h / 24) months.
    stored = logs_gb * spec.observability.log_retention_days * 24 / hours
    costs["logs"] = logs_gb * svc("logs_ingestion_gb") + stored * svc("logs_storage_gb_month")
    costs["alarms"] = _alarm_metrics(spec) * svc("alarm_metric_month")

    if spec.auth.api_keys:
        costs["secrets"] = svc("secret_month")
    costs["kms"] = svc("kms_key_month")
    costs["ecr"] = sum(IMAGE_GB[image] for image in _images(spec)) * svc("ecr_gb_month")
    return _Priced(costs, used, unpriced, compute_range)


def _images(spec: Deployment) -> list[str]:
    images = ["vllm"] if spec.engine.type == "vllm" else []
    if spec.compute.service in ("ecs-fargate", "sagemaker"):
        images.append("gateway")
    return images


def cents(amount: float) -> float:
    """Rounded to the cent, halves up as by hand (36.5 GB x $0.09 = $3.285 -> $3.29), not as binary
    floating point happens to hold them (3.2849999...)."""
    return math.floor(amount * 100 + 0.5 + 1e-7) / 100


def _rounded(costs: dict[str, float]) -> dict[str, float]:
    return {name: cents(costs[name]) for name in COMPONENTS}


def _assumptions(
    spec: Deployment, environment: str, priced: list[_Priced], units: dict[str, float]
) -> list[str]:
    table = prices()
    compute, network = spec.compute, spec.network
    region = spec.region
    notes = [
        f"prices: {table['source']}, as of {table['as_of']}, {region}; "
        f"{table['hours_per_month']} hours a month"
    ]
    used: dict[str, price_table.Price] = {}
    for p in priced:
        used.update(p.used)
    fallback = sorted(k for k, p in used.items() if p.fallback)
    if fallback:
        notes.append(
            f"{region}: no service prices in the table, us-east-1 prices used for {', '.join(fallback)}"
        )
    types = getattr(compute, "types", None) or (
        (compute.instance_type,) if getattr(compute, "instance_type", None) else ()
    )
    for instance_type in types:
        section = "sagemaker" if instance_type.startswith("ml.") else "ec2"
        try:
            price = price_table.lookup(region, section, instance_type)
            if not price.verified:
                notes.append(
                    f"{instance_type}: unverified price {price.usd:g}/h (see tooling/data/prices.yaml)"
                )
        except MissingPrice:
            notes.append(f"UNPRICED: {instance_type} has no {region} price in the table (counted as $0)")
    if len(types) > 1:
        notes.append(
            f"fallback types: priced at {types[0]}, the first choice; the range is every instance "
            f"of the cheapest to every instance of the dearest of {', '.join(types)} (which one runs "
            "depends on EC2 capacity)"
        )
    unverified = sorted(k for k, p in used.items() if not p.verified)
    if unverified:
        notes.append(
            f"{len(unverified)} of the {len(used)} service prices used are marked unverified in "
            "tooling/data/prices.yaml (no AWS Price List record behind them)"
        )
    if getattr(compute, "spot", False):
        notes.append(f"Spot priced at {SPOT_FACTOR:.0%} of on-demand (typical, not a quote)")
        if compute.on_demand_base:
            notes.append(
                f"on_demand_base: the first {compute.on_demand_base} instance(s) in force are on-demand, "
                "the rest Spot"
            )
    if compute.service == "sagemaker":
        tasks = 2 if environment == "prod" else 1
        notes.append(
            f"SageMaker gateway: {tasks} Fargate task(s) of 1 vCPU / 2 GiB arm64, "
            f"max(4, scaling.max) at maximum scale"
        )
    notes.append(
        f"traffic: {TRAFFIC_GB_PER_UNIT_HOUR:g} GB an hour through the load balancer per instance or task, "
        f"{OUT_SHARE:.0%} of it answers; LCUs = {ALB_BASE_LCUS:g} + that GB an hour (1 LCU = 1 GB/h)"
    )
    addresses = _public_ipv4(spec)
    parts = []
    if network.vpc == "new" and network.nat_gateways:
        parts.append(f"{network.nat_gateways} NAT gateway Elastic IP(s)")
    if network.public:
        parts.append(
            f"{addresses - (network.nat_gateways if network.vpc == 'new' else 0)} for the "
            f"internet-facing ALB (one per AZ node, at least {ALB_MIN_NODES}; more if it scales out)"
        )
    notes.append(
        f"public IPv4: {addresses} address(es), billed by the hour"
        + (f": {'; '.join(parts)}" if parts else "")
    )
    if network.vpc == "new" and network.nat_gateways:
        if spec.engine.type == "vllm":
            weights = weights_gb(spec)
            what = (
                "weights from s3:// via the S3 gateway endpoint (no NAT)"
                if weights is None
                else f"{weights:g} GB of weights from Hugging Face per start"
            )
            ecr = "" if network.vpc_endpoints else f" + {ECR_API_GB_PER_LAUNCH:g} GB of ECR API calls"
            starts = {b: launches_per_month(spec.scaling, u, b) for b, u in units.items()}
            notes.append(
                f"launch traffic through NAT: {what}{ecr} (image layers come from S3 through the gateway "
                f"endpoint); starts a month: {starts['min']:.1f} at minimum, {starts['scheduled']:.1f} "
                f"scheduled, {starts['max']:.1f} at maximum ({RELAUNCHES_PER_UNIT_MONTH} relaunches per "
                "instance, each scheduled raise of the floor, and at maximum a daily scale-out from min)"
            )
        else:
            notes.append("NAT data: every prompt and answer to the provider crosses the NAT gateway")
    elif network.vpc != "new":
        notes.append("existing VPC: its NAT gateways are not this stack's and are not priced")
    if not network.public:
        notes.append("internal load balancer: answers stay in the region, no data transfer out")
    insights = spec.observability.container_insights and compute.service in ("ecs-gpu", "ecs-fargate")
    if insights:
        notes.append(
            f"Container Insights: {INSIGHTS_METRICS} custom metrics and "
            f"{INSIGHTS_LOG_GB_PER_UNIT_MONTH:g} GB of performance logs a month per task"
        )
    notes.append(f"alarms: {_alarm_metrics(spec)} alarm metrics (load balancer alarms and target tracking)")
    notes.append(
        f"logs: {LOGS_GB_PER_UNIT_MONTH:g} GB a month per instance or task plus "
        f"{LOGS_BASE_GB_MONTH:g} GB, kept {spec.observability.log_retention_days} days"
    )
    images = ", ".join(f"{i} {IMAGE_GB[i]:g} GB" for i in _images(spec))
    notes.append(
        f"ECR: {images}, charged in full to each deployment that runs it (repositories are per account "
        "and region, and environments may be separate accounts)"
    )
    if spec.engine.type == "external":
        notes.append("the external provider's own charges are not included")
    for schedule in spec.scaling.schedules:
        if week_firings(schedule.cron) is None:
            notes.append(
                f"schedule '{schedule.name}' fires on days of the month: left out of the scheduled figure"
            )
        elif _calendar_restricted(schedule.cron):
            notes.append(f"schedule '{schedule.name}': month/year restriction ignored (taken as every week)")
    notes.append(NOT_PRICED)
    return notes


def estimate(spec: Deployment, environment: str) -> Estimate:
    """The monthly estimate of one deployment in `environment`."""
    scaling = spec.scaling
    units_min = scaling.min
    # The most the spec can ask for: schedules may raise max above scaling.max (templates do the same).
    units_max = max([scaling.max, *(s.max for s in scaling.schedules)])
    hours = capacity_hours(scaling)
    units_scheduled = sum(capacity * h for capacity, h in hours.items()) / hours_per_month()

    gateway_min = gateway_max = 0
    if spec.compute.service == "sagemaker":
        gateway_min = 2 if environment == "prod" else 1
        gateway_max = max(4, scaling.max)

    at_min = _components(spec, units_min, gateway_min, "min")
    at_max = _components(spec, units_max, gateway_max, "max")
    scheduled = _components(spec, units_scheduled, gateway_min, "scheduled")
    units = {"min": units_min, "max": units_max, "scheduled": units_scheduled}
    costs_min, costs_max, costs_scheduled = (_rounded(p.costs) for p in (at_min, at_max, scheduled))
    unpriced = sorted(set(at_min.unpriced + at_max.unpriced))
    ranges = {
        basis: _range(costs, priced)
        for basis, costs, priced in (
            ("min", costs_min, at_min),
            ("max", costs_max, at_max),
            ("scheduled", costs_scheduled, scheduled),
        )
        if priced.compute_range is not None
    }
    return Estimate(
        environment=environment,
        name=spec.name,
        stack_name=spec.stack_name(environment),
        region=spec.region,
        service=spec.compute.service,
        unit=_unit(spec) + (" (unpriced)" if unpriced else ""),
        monthly_min_usd=round(sum(costs_min.values()), 2),
        monthly_max_usd=round(sum(costs_max.values()), 2),
        monthly_scheduled_usd=round(sum(costs_scheduled.values()), 2),
        components=costs_min,
        components_max=costs_max,
        components_scheduled=costs_scheduled,
        units_min=units_min,
        units_max=units_max,
        units_scheduled=round(units_scheduled, 4),
        budget_usd=spec.budget.monthly_usd if spec.budget else None,
        assumptions=_assumptions(spec, environment, [at_min, at_max, scheduled], units),
        unpriced=unpriced,
        ranges=ranges,
    )


def _range(costs: dict[str, float], priced: _Priced) -> tuple[float, float]:
    """The monthly total with the compute of the cheapest and of the dearest instance type."""
    low, high = priced.compute_range or (priced.costs["compute"],) * 2
    others = sum(costs.values()) - costs["compute"]
    return round(others + cents(low), 2), round(others + cents(high), 2)


class _HasSpec(Protocol):
    environment: str
    spec: Deployment | None


def estimate_all(deployments: Any) -> list[Estimate]:
    """Estimates of the valid deployments, sorted by environment and name.

    Takes a `repository.Deployments` (its `.valid` files) or any iterable of objects with `.spec` and
    `.environment` (DeploymentFile); invalid files (spec None) are skipped. Duck-typed on purpose: this
    module must not import `tooling.repository`, which imports validation, which may import us.
    """
    valid = getattr(deployments, "valid", None)
    files: Iterable[_HasSpec] = valid if isinstance(valid, list) else deployments
    found = [estimate(f.spec, f.environment) for f in files if f.spec is not None]
    return sorted(found, key=lambda e: (e.environment, e.name))


# ---------------------------------------------------------------- totals, deltas, budget


def totals(estimates: Iterable[Estimate]) -> dict[str, Any]:
    """{"environments": {env: figures}, "overall": figures}; figures are the three monthly sums."""
    keys = ("monthly_min_usd", "monthly_max_usd", "monthly_scheduled_usd")
    by_env: dict[str, dict[str, float]] = {}
    overall = dict.fromkeys(keys, 0.0)
    for e in estimates:
        env = by_env.setdefault(e.environment, dict.fromkeys(keys, 0.0))
        for key in keys:
            env[key] += getattr(e, key)
            overall[key] += getattr(e, key)
    rounded = {env: {k: round(v, 2) for k, v in figures.items()} for env, figures in sorted(by_env.items())}
    return {"environments": rounded, "overall": {k: round(v, 2) for k, v in overall.items()}}


def delta(before: Estimate | None, after: Estimate | None, basis: Basis = "min") -> float:
    """What a change adds (positive) or saves (negative) a month; None is a stack that does not exist."""
    old = before.monthly(basis) if before else 0.0
    new = after.monthly(basis) if after else 0.0
    return round(new - old, 2)


def format_usd(amount: float, *, cents: bool = False) -> str:
    """$1,468 (or $1,468.25 with cents); negative amounts take a minus sign: −$12."""
    sign = "−" if round(amount, 2 if cents else 0) < 0 else ""
    return f"{sign}${abs(amount):,.2f}" if cents else f"{sign}${abs(amount):,.0f}"


def format_delta(before_usd: float | None, after_usd: float | None) -> str:
    """'+$734 → $1,468': the monthly change in whole dollars, then the new monthly figure.

    None stands for no stack (created: before None; deleted: after None). A change under 50 cents
    reads '±$0'.
    """
    old, new = before_usd or 0.0, after_usd or 0.0
    change = round(new - old)
    sign = "+" if change > 0 else "−" if change < 0 else "±"
    return f"{sign}${abs(change):,} → {format_usd(new)}"


def over_budget(estimate: Estimate, spec: Deployment | None = None) -> str | None:
    """A message when the estimate at minimum scale exceeds the budget, else None.

    The budget is `spec.budget.monthly_usd` when a spec is given, else the one the estimate recorded.
    """
    budget = estimate.budget_usd
    if spec is not None:
        budget = spec.budget.monthly_usd if spec.budget else None
    if budget is None or estimate.monthly_min_usd <= budget:
        return None
    return (
        f"estimated {format_usd(estimate.monthly_min_usd)}/month at minimum scale is over "
        f"budget.monthly_usd {format_usd(budget)} by {format_usd(estimate.monthly_min_usd - budget)}"
    )


# ---------------------------------------------------------------- renderings


def to_json(estimates: list[Estimate]) -> dict[str, Any]:
    """The stable JSON shape (version 1):

    {"version": 1, "currency": "USD", "hours_per_month": 730,
     "price_table": {"source": str, "as_of": str (YYYY-MM-DD), "provenance": str},
     "deployments": [Estimate.to_dict(): environment, name, stack_name, region, service, unit,
                     monthly_min_usd, monthly_max_usd, monthly_scheduled_usd,
                     components (at minimum scale), components_max, components_scheduled
                     ({component: USD} with every key of COMPONENTS), units {min, max, scheduled},
                     budget_usd, over_budget (message or null), assumptions [str], unpriced [str],
                     monthly_range_usd {min, max, scheduled: [low, high]} (fallback types: every
                     instance of the cheapest and of the dearest; low == high with one type)],
     "totals": {"environments": {env: {monthly_min_usd, monthly_max_usd, monthly_scheduled_usd}},
                "overall": {the same three}}}
    """
    table = prices()
    return {
        "version": 1,
        "currency": "USD",
        "hours_per_month": table["hours_per_month"],
        "price_table": {
            "source": table["source"],
            "as_of": table["as_of"],
            "provenance": table["provenance"],
        },
        "deployments": [e.to_dict() for e in estimates],
        "totals": totals(estimates),
    }


def _unique_assumptions(estimates: list[Estimate]) -> list[str]:
    """Notes every estimate shares once, then each deployment's own under its stack name."""
    shared = [
        n
        for n in (estimates[0].assumptions if estimates else [])
        if all(n in e.assumptions for e in estimates)
    ]
    own = [f"{e.stack_name}: {n}" for e in estimates for n in e.assumptions if n not in shared]
    return shared + own


def _budget_cell(e: Estimate) -> str:
    if e.budget_usd is None:
        return "—"
    return format_usd(e.budget_usd) + (" over" if over_budget(e) else "")


def _summary_rows(estimates: list[Estimate]) -> Iterable[tuple[bool, list[str]]]:
    """(is_total, cells) for each deployment, then each environment's total, then the overall total."""
    sums = totals(estimates)
    for env, figures in sums["environments"].items():
        for e in (e for e in estimates if e.environment == env):
            yield (
                False,
                [
                    e.environment,
                    e.name,
                    f"{e.service}: {e.unit}",
                    _figure_cell(e, "min"),
                    _figure_cell(e, "scheduled"),
                    _figure_cell(e, "max"),
                    _budget_cell(e),
                ],
            )
        yield True, [env, "total", "", *_figures(figures), ""]
    yield True, ["all", "total", "", *_figures(sums["overall"]), ""]


def _figure_cell(e: Estimate, basis: Basis) -> str:
    """'$1,468', or with fallback types '$1,468 ($1,204–$1,970)': the first choice, then the range."""
    low, high = (format_usd(v) for v in e.range(basis))
    figure = format_usd(e.monthly(basis))
    return figure if low == high else f"{figure} ({low}–{high})"


def _figures(figures: dict[str, float]) -> list[str]:
    return [
        format_usd(figures["monthly_min_usd"]),
        format_usd(figures["monthly_scheduled_usd"]),
        format_usd(figures["monthly_max_usd"]),
    ]


SUMMARY_COLUMNS = ("Environment", "Deployment", "Runs on", "Minimum", "Scheduled", "Maximum", "Budget")


def to_markdown(estimates: list[Estimate], today: dt.date | None = None) -> str:
    """A pull-request comment: the summary table, the breakdown at minimum scale, the assumptions.
    With `today`, it says how old the prices are."""
    lines = ["### Monthly cost estimate", "", f"_{prices_note(today)}_", ""]
    if not estimates:
        return "\n".join([*lines, "No valid deployments to estimate.", ""])
    lines += [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for is_total, cells in _summary_rows(estimates):
        shown = [f"**{c}**" if is_total and c else c for c in cells]
        lines.append("| " + " | ".join(shown) + " |")
    lines += ["", "<details><summary>Breakdown at minimum scale</summary>", ""]
    lines.append("| Component | " + " | ".join(e.stack_name for e in estimates) + " |")
    lines.append("|---|" + "--:|" * len(estimates))
    for name in COMPONENTS:
        if any(e.components[name] for e in estimates):
            cells = [format_usd(e.components[name], cents=True) for e in estimates]
            lines.append(f"| {COMPONENT_LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", "</details>", "", "<details><summary>Assumptions</summary>", ""]
    lines += [f"- {note}" for note in _unique_assumptions(estimates)]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def to_text(estimates: list[Estimate], today: dt.date | None = None) -> Group:
    """A rich renderable for the terminal: the summary, the breakdown at minimum scale, the assumptions.
    With `today`, it says how old the prices are."""
    summary = Table(
        title="Monthly cost estimate (USD)",
        title_justify="left",
        caption=prices_note(today),
        caption_justify="left",
    )
    for index, column in enumerate(SUMMARY_COLUMNS):
        summary.add_column(column, justify="right" if index >= 3 else "left", no_wrap=True)
    for is_total, cells in _summary_rows(estimates):
        summary.add_row(*cells, style="bold" if is_total else None, end_section=is_total)
    breakdown = Table(title="Breakdown at minimum scale", title_justify="left")
    breakdown.add_column("Component", no_wrap=True)
    for e in estimates:
        breakdown.add_column(e.stack_name, justify="right", no_wrap=True)
    for name in COMPONENTS:
        if any(e.components[name] for e in estimates):
            breakdown.add_row(
                COMPONENT_LABELS[name], *(format_usd(e.components[name], cents=True) for e in estimates)
            )
    notes = Text("\n".join(f"- {note}" for note in _unique_assumptions(estimates)), style="dim")
    return Group(summary, breakdown, Text("Assumptions:"), notes)
