"""Monthly cost estimates for deployments, from the price table in `tooling/data/prices.yaml`.

Pure and deterministic: no network, no clock, no AWS Pricing API. A month is 730 hours (AWS's own
convention, 8760 / 12). Every figure is us-east-1 on-demand times the region's factor.

Three figures per deployment, each broken down by component:

- **minimum**: `scaling.min` instances or tasks all month, the floor the spec promises to pay for;
- **maximum**: the most the spec can ask for (`scaling.max`, or a schedule's larger `max`) all month;
- **scheduled**: the capacity the schedules keep in force hour by hour (see `capacity_hours`).

Only what a stack creates is priced: compute, EBS root volumes, the ALB, NAT gateways, interface VPC
endpoints, CloudWatch Logs, the API key secret, the KMS key and the ECR images it runs. Every figure that
rests on an assumption (traffic, log volume, image size, Spot discount) says so in `Estimate.assumptions`.

Public API (the CLI, validation and plan call these):

    estimate(spec, environment) -> Estimate
    estimate_all(deployments) -> list[Estimate]          # repository.Deployments or DeploymentFiles
    capacity_hours(scaling) -> dict[int, float]          # monthly hours at each scheduled capacity
    to_text(estimates) -> rich renderable; to_markdown(estimates) -> str; to_json(estimates) -> dict
    totals(estimates) -> dict                            # per environment and overall
    delta(before, after, basis="min") -> float; format_delta(before_usd, after_usd) -> str
    format_usd(amount, cents=False) -> str
    over_budget(estimate, spec=None) -> str | None
    Estimate.monthly(basis) -> float; Estimate.to_dict() -> dict   # one deployment of the JSON
    prices(), instance_price(type), region_factor(region), fargate_task_hour(compute), week_firings(cron)

This module imports neither `tooling.repository` nor `tooling.validation`, so validation may import it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal, Protocol

import yaml
from rich.console import Group
from rich.table import Table
from rich.text import Text

from tooling import cron
from tooling.spec import Deployment, FargateCompute, Scaling

# The order components are listed in everywhere; every estimate carries all of them (0.0 when the
# stack does not create the thing), so plan diffs and JSON consumers see a stable shape.
COMPONENTS = (
    "compute",
    "gateway",
    "ebs",
    "load_balancer",
    "nat_gateway",
    "vpc_endpoints",
    "logs",
    "secrets",
    "kms",
    "ecr",
)
COMPONENT_LABELS = {
    "compute": "Compute",
    "gateway": "Gateway (Fargate)",
    "ebs": "EBS gp3 volumes",
    "load_balancer": "Load balancer",
    "nat_gateway": "NAT gateways",
    "vpc_endpoints": "VPC endpoints",
    "logs": "CloudWatch Logs",
    "secrets": "Secrets Manager",
    "kms": "KMS key",
    "ecr": "ECR images",
}
NOT_PRICED = (
    "not priced: data transfer out, VPC endpoint and NAT data beyond the stated volumes, API requests "
    "(Secrets Manager, KMS, SageMaker), CloudWatch alarms, metrics and Container Insights, SNS, "
    "the ALB access-log bucket, AWS Budgets, taxes and discounts (Savings Plans, Reserved)"
)
# Interface endpoints per service, mirroring templates/network.py and templates/stack.py; the S3 gateway
# endpoint is free.
COMMON_ENDPOINTS = 4
EXTRA_ENDPOINTS = {"sagemaker": 2, "ecs-gpu": 3}
NEW_VPC_AZS = 2
# The SageMaker target's gateway (templates/targets/sagemaker.py): 1 vCPU, 2 GiB, arm64, 21 GiB storage;
# 2 tasks in prod (1 elsewhere), at most max(4, scaling.max), and not on the spec's schedules.
SAGEMAKER_GATEWAY = FargateCompute(service="ecs-fargate", cpu=1024, memory=2048, architecture="arm64")

Basis = Literal["min", "max", "scheduled"]


# ---------------------------------------------------------------- the price table


@cache
def prices() -> dict[str, Any]:
    """The price table, read once from the package data."""
    text = resources.files("tooling").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def hours_per_month() -> float:
    return float(prices()["hours_per_month"])


def region_factor(region: str) -> tuple[float, bool]:
    """(factor, known): unknown regions take the table's default, which the estimate flags."""
    table = prices()
    factors = table["region_factors"]
    if region in factors:
        return float(factors[region]), True
    return float(table["default_region_factor"]), False


def instance_price(instance_type: str) -> float:
    """On-demand USD per hour in us-east-1 for an EC2 or SageMaker (ml.*) GPU instance type."""
    table = prices()
    section = "sagemaker_usd_per_hour" if instance_type.startswith("ml.") else "ec2_usd_per_hour"
    return float(table[section][instance_type])


def fargate_task_hour(compute: FargateCompute) -> float:
    """USD per task-hour in us-east-1: vCPU and memory by architecture, storage above the free 20 GB."""
    fargate = prices()["fargate"]
    rates = fargate[compute.architecture]
    # AWS bills Fargate memory and storage per GB; the spec's MiB and GiB are taken as GB / 1024 and GB.
    vcpus, memory_gb = compute.cpu / 1024, compute.memory / 1024
    extra_storage = max(0, compute.ephemeral_storage_gib - fargate["ephemeral_free_gb"])
    return (
        vcpus * rates["vcpu_hour"]
        + memory_gb * rates["gb_hour"]
        + extra_storage * fargate["ephemeral_gb_hour"]
    )


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
    key of COMPONENTS, rounded to cents, and each monthly_* figure is the sum of its dict."""

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
        }


def _unit(spec: Deployment) -> str:
    compute = spec.compute
    if isinstance(compute, FargateCompute):
        return f"{compute.cpu / 1024:g} vCPU / {compute.memory / 1024:g} GiB {compute.architecture}"
    return compute.instance_type + (" spot" if getattr(compute, "spot", False) else "")


def _components(spec: Deployment, units: float, gateway_tasks: int) -> dict[str, float]:
    """Monthly USD per component in us-east-1, before the region factor, for `units` instances or tasks
    in force all month (an average, for the scheduled figure)."""
    table = prices()
    hours = hours_per_month()
    compute, network = spec.compute, spec.network
    costs = dict.fromkeys(COMPONENTS, 0.0)

    if isinstance(compute, FargateCompute):
        costs["compute"] = fargate_task_hour(compute) * hours * units
    else:
        rate = instance_price(compute.instance_type)
        if getattr(compute, "spot", False):
            rate *= table["spot_factor"]
        costs["compute"] = rate * hours * units
    if compute.service == "sagemaker":
        costs["gateway"] = fargate_task_hour(SAGEMAKER_GATEWAY) * hours * gateway_tasks
    if compute.service in ("ecs-gpu", "ec2"):
        # Root volumes are deleted with their instance, so they cost only while instances run.
        costs["ebs"] = compute.volume_gib * table["ebs"]["gp3_gb_month"] * units

    alb = table["alb"]
    costs["load_balancer"] = (alb["hour"] + alb["assumed_lcus"] * alb["lcu_hour"]) * hours

    nat = table["nat_gateway"]
    if network.vpc == "new" and network.nat_gateways:
        traffic = nat["assumed_gb_per_month"]["gateway" if spec.engine.type == "external" else "gpu"]
        costs["nat_gateway"] = nat["hour"] * hours * network.nat_gateways + nat["gb_processed"] * traffic

    # Interface endpoints exist in a VPC we own, or in another one only with endpoint_private_dns.
    if network.vpc_endpoints and (network.vpc == "new" or network.endpoint_private_dns):
        endpoints = COMMON_ENDPOINTS + EXTRA_ENDPOINTS.get(compute.service, 0)
        # One network interface per AZ: two for a new VPC, one per listed private subnet otherwise.
        azs = NEW_VPC_AZS if network.vpc == "new" else len(set(network.private_subnets))
        costs["vpc_endpoints"] = table["vpc_endpoint"]["hour_per_az"] * hours * endpoints * azs

    logs = table["cloudwatch_logs"]
    ingested = logs["assumed_base_gb_month"] + logs["assumed_gb_per_unit_month"] * (units + gateway_tasks)
    # At steady state the group holds retention_days worth of ingestion: days / (730 h / 24) months.
    stored = ingested * spec.observability.log_retention_days * 24 / hours
    costs["logs"] = ingested * logs["ingestion_gb"] + stored * logs["storage_gb_month"]

    if spec.auth.api_keys:
        costs["secrets"] = table["secrets_manager"]["secret_month"]
    costs["kms"] = table["kms"]["key_month"]
    costs["ecr"] = (
        sum(table["ecr"]["assumed_image_gb"][image] for image in _images(spec)) * table["ecr"]["gb_month"]
    )
    return costs


def _images(spec: Deployment) -> list[str]:
    images = ["vllm"] if spec.engine.type == "vllm" else []
    if spec.compute.service in ("ecs-fargate", "sagemaker"):
        images.append("gateway")
    return images


def _rounded(costs: dict[str, float], factor: float) -> dict[str, float]:
    return {name: round(costs[name] * factor, 2) for name in COMPONENTS}


def _assumptions(spec: Deployment, environment: str) -> list[str]:
    table = prices()
    compute, network = spec.compute, spec.network
    notes = [
        f"prices: {table['source']}, as of {table['as_of']}; {table['hours_per_month']} hours a month",
    ]
    factor, known = region_factor(spec.region)
    if spec.region != "us-east-1":
        notes.append(
            f"{spec.region}: us-east-1 prices x {factor:g}"
            + ("" if known else " (region not in the table: default factor, approximate)")
        )
    instance_type = getattr(compute, "instance_type", None)
    if instance_type and not _exact(instance_type):
        notes.append(f"{instance_type}: approximate list price (see tooling/data/prices.yaml)")
    if getattr(compute, "spot", False):
        notes.append(f"Spot priced at {table['spot_factor']:.0%} of on-demand (typical, not a quote)")
    if compute.service == "sagemaker":
        tasks = 2 if environment == "prod" else 1
        notes.append(
            f"SageMaker gateway: {tasks} Fargate task(s) of 1 vCPU / 2 GiB arm64, "
            f"max(4, scaling.max) at maximum scale"
        )
    alb = table["alb"]
    notes.append(f"load balancer: {alb['assumed_lcus']} LCU on average")
    if network.vpc == "new" and network.nat_gateways:
        traffic = table["nat_gateway"]["assumed_gb_per_month"][
            "gateway" if spec.engine.type == "external" else "gpu"
        ]
        notes.append(f"NAT: {traffic} GB a month processed")
    elif network.vpc != "new":
        notes.append("existing VPC: its NAT gateways are not this stack's and are not priced")
    logs = table["cloudwatch_logs"]
    notes.append(
        f"logs: {logs['assumed_gb_per_unit_month']:g} GB a month per instance or task plus "
        f"{logs['assumed_base_gb_month']:g} GB, kept {spec.observability.log_retention_days} days"
    )
    images = ", ".join(f"{i} {table['ecr']['assumed_image_gb'][i]:g} GB" for i in _images(spec))
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


def _exact(instance_type: str) -> bool:
    """Whether the table does not mark an instance price approximate."""
    table = prices()
    if instance_type in table["exact_instance_types"]:
        return True
    section = "sagemaker" if instance_type.startswith("ml.") else "ec2"
    family = instance_type.removeprefix("ml.").split(".")[0]
    return family not in table["approximate_instance_families"][section]


def estimate(spec: Deployment, environment: str) -> Estimate:
    """The monthly estimate of one deployment in `environment`."""
    factor, _ = region_factor(spec.region)
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

    at_min = _rounded(_components(spec, units_min, gateway_min), factor)
    at_max = _rounded(_components(spec, units_max, gateway_max), factor)
    scheduled = _rounded(_components(spec, units_scheduled, gateway_min), factor)
    return Estimate(
        environment=environment,
        name=spec.name,
        stack_name=spec.stack_name(environment),
        region=spec.region,
        service=spec.compute.service,
        unit=_unit(spec),
        monthly_min_usd=round(sum(at_min.values()), 2),
        monthly_max_usd=round(sum(at_max.values()), 2),
        monthly_scheduled_usd=round(sum(scheduled.values()), 2),
        components=at_min,
        components_max=at_max,
        components_scheduled=scheduled,
        units_min=units_min,
        units_max=units_max,
        units_scheduled=round(units_scheduled, 4),
        budget_usd=spec.budget.monthly_usd if spec.budget else None,
        assumptions=_assumptions(spec, environment),
    )


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
     "price_table": {"source": str, "as_of": str},
     "deployments": [Estimate.to_dict(): environment, name, stack_name, region, service, unit,
                     monthly_min_usd, monthly_max_usd, monthly_scheduled_usd,
                     components (at minimum scale), components_max, components_scheduled
                     ({component: USD} with every key of COMPONENTS), units {min, max, scheduled},
                     budget_usd, over_budget (message or null), assumptions [str]],
     "totals": {"environments": {env: {monthly_min_usd, monthly_max_usd, monthly_scheduled_usd}},
                "overall": {the same three}}}
    """
    table = prices()
    return {
        "version": 1,
        "currency": "USD",
        "hours_per_month": table["hours_per_month"],
        "price_table": {"source": table["source"], "as_of": table["as_of"]},
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
                    format_usd(e.monthly_min_usd),
                    format_usd(e.monthly_scheduled_usd),
                    format_usd(e.monthly_max_usd),
                    _budget_cell(e),
                ],
            )
        yield True, [env, "total", "", *_figures(figures), ""]
    yield True, ["all", "total", "", *_figures(sums["overall"]), ""]


def _figures(figures: dict[str, float]) -> list[str]:
    return [
        format_usd(figures["monthly_min_usd"]),
        format_usd(figures["monthly_scheduled_usd"]),
        format_usd(figures["monthly_max_usd"]),
    ]


SUMMARY_COLUMNS = ("Environment", "Deployment", "Runs on", "Minimum", "Scheduled", "Maximum", "Budget")


def to_markdown(estimates: list[Estimate]) -> str:
    """A pull-request comment: the summary table, the breakdown at minimum scale, the assumptions."""
    lines = ["### Monthly cost estimate", ""]
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


def to_text(estimates: list[Estimate]) -> Group:
    """A rich renderable for the terminal: the summary, the breakdown at minimum scale, the assumptions."""
    summary = Table(title="Monthly cost estimate (USD)", title_justify="left")
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
