"""Quota preflight: would the plan's deployments, at their maximum scale, fit the account's quotas?

A GPU endpoint that scales past its quota does not fail its deploy: the Auto Scaling group or the
SageMaker scaler retries quietly while traffic queues. So `plan --against aws` and `deploy` read the
quotas first and compare them with what every deployment of the plan needs at its ceiling, on top of
what the account already runs.

Quotas, per region:

- EC2 counts vCPUs per instance class, On-Demand and Spot apart
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits,
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html): "Running On-Demand G and
  VT instances" (L-DB2E81BA), "Running On-Demand P instances" (L-417A185B), "All G and VT Spot Instance
  Requests" (L-3819A6DF), "All P Spot Instance Requests" (L-7212CCBC). The name shown is the one AWS
  returns, so a renamed quota reads as AWS calls it.
- SageMaker counts instances per type: "ml.g5.xlarge for endpoint usage" and so on, each with its own
  code, found by name with ListServiceQuotas (ServiceCode `sagemaker`)
  (https://docs.aws.amazon.com/general/latest/gr/sagemaker.html).

GetServiceQuota and ListServiceQuotas return applied values only; where none is applied the default is
read (GetAWSDefaultServiceQuota, ListAWSDefaultServiceQuotas)
(https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html).

Current usage is the quota's own usage metric where it has one (its `UsageMetric`: AWS/Usage
ResourceCount with Service=EC2, Type=Resource, Resource=vCPU, Class=G/OnDemand and so on, read with its
recommended statistic: https://docs.aws.amazon.com/servicequotas/latest/userguide/configure-cloudwatch.html),
else counted: running and pending instances (DescribeInstances), or endpoint instances (ListEndpoints,
DescribeEndpoint, DescribeEndpointConfig). What the plan's own stacks already run is subtracted, so an
update is not counted twice: their instances carry the `deployctl:stack` tag (templates/tags.py
propagates it at launch), and their endpoints' names are `endpoint_name(stack, type)`.

The comparison (`needs`, `compare`) is pure; `read` does the AWS calls through a client factory, so
tests give it botocore Stubbers. A quota that cannot be read is a warning naming the missing
permission, never a crash, and never a pass: the report says what was not checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tooling import catalog

ClientFactory = Callable[[str, str], Any]

EC2 = "ec2"
SAGEMAKER = "sagemaker"
STACK_TAG = "deployctl:stack"  # templates/context.py tags(); on every instance a group launches


@dataclass(frozen=True)
class Quota:
    service: str  # the Service Quotas service code
    name: str
    code: str = ""  # empty: found by name (SageMaker's per-type quotas)
    unit: str = "vCPUs"


EC2_QUOTAS: dict[tuple[str, bool], Quota] = {
    ("G", False): Quota(EC2, "Running On-Demand G and VT instances", "L-DB2E81BA"),
    ("P", False): Quota(EC2, "Running On-Demand P instances", "L-417A185B"),
    ("G", True): Quota(EC2, "All G and VT Spot Instance Requests", "L-3819A6DF"),
    ("P", True): Quota(EC2, "All P Spot Instance Requests", "L-7212CCBC"),
}


def instance_class(instance_type: str) -> str | None:
    """The EC2 quota class of an instance type: G (G and VT families), P, or None (not ours to check)."""
    family = instance_type.removeprefix("ml.").split(".")[0].lower()
    if family.startswith("vt") or family.startswith("g"):
        return "G"
    if family.startswith("p"):
        return "P"
    return None


def sagemaker_quota(instance_type: str) -> Quota:
    return Quota(SAGEMAKER, f"{instance_type} for endpoint usage", unit="instances")


def console_link(service: str, code: str, region: str) -> str:
    """Where to request more: the Service Quotas console page of that quota, in that region (the
    commercial partition's console; elsewhere none is guessed)."""
    if catalog.regions().get(region, "aws") != "aws":
        return ""
    return f"https://{region}.console.aws.amazon.com/servicequotas/home/services/{service}/quotas/{code}"


# ---------------------------------------------------------------------------------------------- needs


@dataclass(frozen=True)
class Need:
    """What one deployment needs of one quota at its ceiling."""

    stack_name: str
    region: str
    quota: Quota
    amount: int
    detail: str
    # SageMaker updates an endpoint blue/green: the new fleet starts beside the old one, so while a
    # deploy runs the endpoint holds twice what it runs
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeploymentConfig.html).
    # True: the stack changes; None: it may (a deploy knows only once it runs); False: it does not.
    blue_green: bool | None = False


def ceiling(spec: Any) -> int:
    """The most instances the spec can ask for, schedules included."""
    return max([spec.scaling.max, *(s.max for s in spec.scaling.schedules)])


def needs(stack_name: str, spec: Any, *, updating: bool | None = True) -> list[Need]:
    """What `spec` needs of each quota at its maximum scale. `updating`: the deploy changes the stack
    (an unchanged SageMaker endpoint starts no second fleet); None: not known."""
    from templates.gpu_hosts import DEPLOY_HEADROOM  # noqa: PLC0415

    compute = spec.compute
    if compute.service == "sagemaker":
        count = ceiling(spec)
        if not count:
            return []
        detail = f"{count} × {compute.instance_type}"
        return [Need(stack_name, spec.region, sagemaker_quota(compute.instance_type), count, detail,
                     blue_green=updating)]  # fmt: skip
    if compute.service not in ("ecs-gpu", "ec2"):
        return []
    # The group's MaxSize: a rolling deploy at full scale starts one instance beyond the ceiling.
    total = ceiling(spec) + DEPLOY_HEADROOM
    types = sorted(set(compute.types))
    # Spot groups may keep a base of On-Demand instances; the rest draws on the Spot quota.
    base = compute.on_demand_base
    on_demand = min(total, base) if compute.spot else total
    out: list[Need] = []
    for spot, count in ((False, on_demand), (True, total - on_demand)):
        if count <= 0:
            continue
        by_class: dict[str, list[str]] = {}
        for name in types:
            if (cls := instance_class(name)) is not None:
                by_class.setdefault(cls, []).append(name)
        for cls, names in sorted(by_class.items()):
            # Any of the types may be launched: the largest is what the quota must hold.
            largest = max(names, key=lambda n: (_vcpus(n) or 0, n))
            vcpus = _vcpus(largest) or 0
            detail = f"{count} × {largest} ({vcpus} vCPUs{', Spot' if spot else ''})"
            out.append(Need(stack_name, spec.region, EC2_QUOTAS[(cls, spot)], count * vcpus, detail))
    return out


def _vcpus(instance_type: str) -> int | None:
    known = catalog.EC2_GPU_INSTANCES.get(instance_type)
    return known.vcpus if known else None


# ----------------------------------------------------------------------------------------- comparison


@dataclass
class Reading:
    """One quota in one region as read from AWS; None where it could not be read."""

    value: float | None = None
    code: str = ""
    name: str = ""
    usage: float | None = None  # everything the account runs against it now
    own: dict[str, float] = field(default_factory=dict)  # of that, each of the plan's stacks


@dataclass
class QuotaCheck:
    region: str
    service: str
    code: str
    name: str
    unit: str
    value: float | None
    usage: float | None
    own: float
    needed: float
    stacks: list[str]
    # What SageMaker's second fleets add while endpoints that may change are updated (not in `needed`).
    during_update: float = 0.0

    @property
    def after(self) -> float:
        """What the account would run against it with every stack of the plan at its ceiling."""
        return max(0.0, (self.usage or 0.0) - self.own) + self.needed

    @property
    def exceeded(self) -> bool:
        # Usage unread: what the plan needs alone can still be known to exceed the quota.
        return self.value is not None and self.after > self.value

    @property
    def link(self) -> str:
        return console_link(self.service, self.code, self.region) if self.code else ""

    def message(self, *, link: bool = True) -> str:
        other = max(0.0, (self.usage or 0.0) - self.own)
        used = "usage unknown" if self.usage is None else f"{_n(other)} {self.unit} in use by others"
        value = "was not read" if self.value is None else f"is {_n(self.value)} {self.unit}"
        head = (
            f"{self.region}: {self.name} ({self.code or 'no code'}) {value}; "
            f"the plan needs {_n(self.needed)} at maximum scale ({'; '.join(self.stacks)}) on top of "
            f"{used}: {_n(self.after)} in all"
        )
        if self.exceeded:
            head += f", {_n(self.after - (self.value or 0))} over"
            if link:
                where = self.link or f"the Service Quotas console of {self.region}"
                head += f". Request more: {where}"
        return head

    @property
    def tight_during_update(self) -> bool:
        """Fits at maximum scale, but not while those endpoints' new fleets start."""
        return self.value is not None and not self.exceeded and self.after + self.during_update > self.value

    def update_warning(self) -> str:
        return (
            f"{self.region}: {self.name} ({self.code}) holds {_n(self.after)} of {_n(self.value or 0)} "
            f"{self.unit}, but an update of these endpoints starts a new fleet beside the running one: "
            f"{_n(self.during_update)} more while it runs, {_n(self.after + self.during_update)} in all; "
            "SageMaker fails the update if the quota cannot hold both"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(after=self.after, exceeded=self.exceeded, link=self.link)
        return data


def _n(value: float) -> str:
    return f"{value:g}"


def compare(all_needs: Iterable[Need], readings: Mapping[tuple[str, Quota], Reading]) -> list[QuotaCheck]:
    """Each quota the plan touches, with what it would hold. A quota missing from `readings` (or read
    as None) is unknown, not passed."""
    grouped: dict[tuple[str, Quota], list[Need]] = {}
    for need in all_needs:
        grouped.setdefault((need.region, need.quota), []).append(need)
    checks = []
    for (region, quota), group in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1].name)):
        reading = readings.get((region, quota)) or Reading()
        needed = during_update = 0.0
        lines = []
        for need in sorted(group, key=lambda n: n.stack_name):
            amount = float(need.amount)
            running = reading.own.get(need.stack_name, 0.0)
            detail = need.detail
            if need.blue_green and 2 * running > amount:
                amount = 2 * running
                detail += f"; {_n(running)} running, doubled while the update's new fleet starts"
            elif need.blue_green is None and 2 * running > amount:
                during_update += 2 * running - amount
            needed += amount
            lines.append(f"{need.stack_name}: {detail} = {_n(amount)}")
        own = sum(reading.own.get(s, 0.0) for s in {n.stack_name for n in group})
        checks.append(
            QuotaCheck(region, quota.service, reading.code or quota.code, reading.name or quota.name,
                       quota.unit, reading.value, reading.usage, own, needed, lines, during_update)
        )  # fmt: skip
    return checks


@dataclass
class Report:
    checked: bool
    checks: list[QuotaCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    note: str = ""

    @classmethod
    def not_checked(cls, why: str) -> Report:
        return cls(False, note=f"quotas were not checked: {why}")

    @property
    def exceeded(self) -> list[QuotaCheck]:
        return [c for c in self.checks if c.exceeded]

    def lines(self) -> list[tuple[str, str]]:
        """(level, text) per line: error for an exceeded quota, warning, or info."""
        if not self.checked:
            return [("info", self.note)]
        out = [("error" if c.exceeded else "info", c.message()) for c in self.checks]
        out += [("warning", c.update_warning()) for c in self.checks if c.tight_during_update]
        out += [("warning", w) for w in self.warnings]
        if not self.checks and not self.warnings:
            out.append(("info", "quotas: no GPU instances in the plan"))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "note": self.note,
            "exceeded": len(self.exceeded),
            "warnings": list(self.warnings),
            "quotas": [c.to_json() for c in self.checks],
        }


# -------------------------------------------------------------------------------------------- reading

# boto3's client name -> the IAM service prefix its actions have.
IAM_PREFIX = {"service-quotas": "servicequotas", "cloudwatch": "cloudwatch", "ec2": "ec2",
              "sagemaker": "sagemaker"}  # fmt: skip
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
# The usage metrics are published every minute; a window of a few keeps a late datapoint in reach.
METRIC_WINDOW = dt.timedelta(minutes=15)
METRIC_PERIOD = 60


class Unreadable(Exception):
    """An AWS read failed: the message names what is missing."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def _guard(service: str) -> Iterator[None]:
    """An AWS error as Unreadable, naming the permission when access was denied."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in DENIED:
            raise Unreadable(
                f"missing permission {IAM_PREFIX.get(service, service)}:{exc.operation_name}"
            ) from None
        raise Unreadable(
            f"{exc.operation_name} failed: {error.get('Code')}: {error.get('Message', '')}",
            error.get("Code", ""),
        ) from None
    except BotoCoreError as exc:
        raise Unreadable(f"{service}: {exc}") from None


def _items(paginator: Any, key: str, **kwargs: Any) -> list[Any]:
    return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]


def read(
    all_needs: list[Need], clients: ClientFactory, *, now: dt.datetime | None = None
) -> tuple[dict[tuple[str, Quota], Reading], list[str]]:
    """Every quota `all_needs` touch, read from AWS: the readings and what could not be read."""
    now = now or dt.datetime.now(dt.UTC)
    stacks = {n.stack_name for n in all_needs}
    readings: dict[tuple[str, Quota], Reading] = {}
    warnings: list[str] = []
    by_region: dict[str, set[Quota]] = {}
    for need in all_needs:
        by_region.setdefault(need.region, set()).add(need.quota)
    for region, wanted in sorted(by_region.items()):
        ec2 = sorted((q for q in wanted if q.service == EC2), key=lambda q: q.code)
        sagemaker = sorted((q for q in wanted if q.service == SAGEMAKER), key=lambda q: q.name)
        if ec2:
            _read_ec2(region, ec2, stacks, clients, now, readings, warnings)
        if sagemaker:
            _read_sagemaker(region, sagemaker, stacks, clients, now, readings, warnings)
    return readings, warnings


def _read_ec2(region: str, wanted: list[Quota], stacks: set[str], clients: ClientFactory,
              now: dt.datetime, readings: dict, warnings: list[str]) -> None:  # fmt: skip
    try:
        counted: tuple[dict, dict] | None = _ec2_instances(region, stacks, clients)
    except Unreadable as exc:
        counted = None
        warnings.append(f"{region}: EC2 usage not read ({exc}); the plan's own instances are not subtracted")
    for quota in wanted:
        reading = Reading()
        readings[(region, quota)] = reading
        key = next(k for k, q in EC2_QUOTAS.items() if q == quota)
        if counted is not None:
            reading.usage = counted[0].get(key, 0.0)
            reading.own = {s: v.get(key, 0.0) for s, v in counted[1].items() if v.get(key)}
        try:
            data = _quota(region, quota.service, quota.code, clients)
        except Unreadable as exc:
            warnings.append(f"{region}: {quota.name} ({quota.code}) not checked: {exc}")
            continue
        _fill(reading, data, region, warnings)
        # The quota's own usage metric is what Service Quotas compares; the count stands in without it.
        usage = _metric(region, data, clients, now, warnings)
        if usage is not None:
            reading.usage = usage


def _ec2_instances(region: str, stacks: set[str], clients: ClientFactory) -> tuple[dict, dict]:
    """vCPUs of running and pending instances per (class, spot): in all, and per stack of ours."""
    filters = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    with _guard(EC2):
        reservations = _items(
            clients(EC2, region).get_paginator("describe_instances"), "Reservations", Filters=filters
        )
    totals: dict[tuple[str, bool], float] = {}
    own: dict[str, dict[tuple[str, bool], float]] = {}
    for reservation in reservations:
        for instance in reservation.get("Instances", []):
            cls = instance_class(instance.get("InstanceType", ""))
            if cls is None:
                continue
            key = (cls, instance.get("InstanceLifecycle") == "spot")
            vcpus = float(_vcpus(instance["InstanceType"]) or _cpu_options(instance))
            totals[key] = totals.get(key, 0.0) + vcpus
            tags = {t.get("Key"): t.get("Value") for t in instance.get("Tags", [])}
            if (stack := tags.get(STACK_TAG)) in stacks:
                mine = own.setdefault(stack, {})
                mine[key] = mine.get(key, 0.0) + vcpus
    return totals, own


def _cpu_options(instance: dict) -> int:
    options = instance.get("CpuOptions", {})
    return int(options.get("CoreCount", 0)) * int(options.get("ThreadsPerCore", 1))


def _quota(region: str, service: str, code: str, clients: ClientFactory) -> dict:
    client = clients("service-quotas", region)
    try:
        with _guard("service-quotas"):
            return client.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]
    except Unreadable as exc:
        if exc.code != "NoSuchResourceException":
            raise
    # No applied value: the default is the quota.
    with _guard("service-quotas"):
        return client.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]


def _fill(reading: Reading, data: dict, region: str, warnings: list[str]) -> None:
    reading.code = data.get("QuotaCode", "")
    reading.name = data.get("QuotaName", "")
    if reason := data.get("ErrorReason"):
        # The quota could not be resolved on AWS's side (e.g. DEPENDENCY_ACCESS_DENIED_ERROR).
        warnings.append(f"{region}: {reading.name} ({reading.code}) not checked: "
                        f"{reason.get('ErrorCode')}: {reason.get('ErrorMessage', '')}")  # fmt: skip
        return
    if "Value" in data:
        reading.value = float(data["Value"])


def _metric(region: str, data: dict, clients: ClientFactory, now: dt.datetime,
            warnings: list[str]) -> float | None:  # fmt: skip
    """The quota's own usage metric, newest datapoint; None when it has none (then usage is counted)."""
    metric = data.get("UsageMetric") or {}
    if not metric.get("MetricNamespace") or not metric.get("MetricName"):
        return None
    query = {
        "Id": "usage",
        "MetricStat": {
            "Metric": {
                "Namespace": metric["MetricNamespace"],
                "MetricName": metric["MetricName"],
                "Dimensions": [{"Name": k, "Value": v}
                               for k, v in sorted(metric.get("MetricDimensions", {}).items())],
            },
            "Period": METRIC_PERIOD,
            "Stat": metric.get("MetricStatisticRecommendation") or "Maximum",
        },
        "ReturnData": True,
    }  # fmt: skip
    try:
        with _guard("cloudwatch"):
            result = clients("cloudwatch", region).get_metric_data(
                MetricDataQueries=[query],
                StartTime=now - METRIC_WINDOW,
                EndTime=now,
                ScanBy="TimestampDescending",
            )
    except Unreadable as exc:
        warnings.append(
            f"{region}: usage metric of {data.get('QuotaCode')} not read ({exc}); counted instead"
        )
        return None
    for series in result.get("MetricDataResults", []):
        if series.get("Values"):
            return float(series["Values"][0])
    return None  # nothing published lately: counted instead


def _read_sagemaker(region: str, wanted: list[Quota], stacks: set[str], clients: ClientFactory,
                    now: dt.datetime, readings: dict, warnings: list[str]) -> None:  # fmt: skip
    for quota in wanted:
        readings[(region, quota)] = Reading()
    try:
        found = _sagemaker_quotas(region, {q.name for q in wanted}, clients)
    except Unreadable as exc:
        found = {}
        names = ", ".join(q.name for q in wanted)
        warnings.append(f"{region}: SageMaker quotas ({names}) not checked: {exc}")
    try:
        totals, own = _endpoint_instances(region, stacks, clients)
    except Unreadable as exc:
        totals, own = None, {}
        warnings.append(f"{region}: SageMaker endpoint usage not read ({exc})")
    for quota in wanted:
        reading = readings[(region, quota)]
        instance_type = quota.name.removesuffix(" for endpoint usage")
        reading.own = {s: v[instance_type] for s, v in own.items() if v.get(instance_type)}
        if totals is not None:
            reading.usage = totals.get(instance_type, 0.0)
        data = found.get(quota.name)
        if data is None:
            if found:
                warnings.append(f"{region}: no SageMaker quota named {quota.name!r}: not checked")
            continue
        _fill(reading, data, region, warnings)
        usage = _metric(region, data, clients, now, warnings)
        if usage is not None:
            reading.usage = usage


def _sagemaker_quotas(region: str, names: set[str], clients: ClientFactory) -> dict[str, dict]:
    """The per-type endpoint quotas by name: applied values, else the defaults."""
    client = clients("service-quotas", region)
    found: dict[str, dict] = {}
    with _guard("service-quotas"):
        listings = (
            lambda: _items(client.get_paginator("list_service_quotas"), "Quotas", ServiceCode=SAGEMAKER),
            lambda: _items(
                client.get_paginator("list_aws_default_service_quotas"), "Quotas", ServiceCode=SAGEMAKER
            ),
        )
        for listing in listings:
            for quota in listing():
                if quota.get("QuotaName") in names:
                    found.setdefault(quota["QuotaName"], quota)
            if names <= set(found):
                break
    return found


# An endpoint in these states holds no instances.
_GONE = {"Failed", "Deleting", "OutOfService"}


def _endpoint_instances(region: str, stacks: set[str], clients: ClientFactory) -> tuple[dict, dict]:
    """Endpoint instances per type: in all, and per stack of ours (found by the endpoint's name)."""
    from templates.targets.sagemaker import endpoint_name  # noqa: PLC0415

    ours = {endpoint_name(s, t): s for s in stacks for t in catalog.SAGEMAKER_GPU_INSTANCES}
    totals: dict[str, float] = {}
    own: dict[str, dict[str, float]] = {}
    configs: dict[str, dict[str, str]] = {}
    client = clients(SAGEMAKER, region)
    with _guard(SAGEMAKER):
        summaries = _items(client.get_paginator("list_endpoints"), "Endpoints")
    for summary in summaries:
        if summary.get("EndpointStatus") in _GONE:
            continue
        name = summary["EndpointName"]
        with _guard(SAGEMAKER):
            endpoint = client.describe_endpoint(EndpointName=name)
        config = endpoint.get("EndpointConfigName", "")
        if config not in configs:
            with _guard(SAGEMAKER):
                described = client.describe_endpoint_config(EndpointConfigName=config)
            configs[config] = {v["VariantName"]: v.get("InstanceType", "")
                               for v in described.get("ProductionVariants", [])}  # fmt: skip
        for variant in endpoint.get("ProductionVariants", []):
            instance_type = configs[config].get(variant.get("VariantName", ""), "")
            if not instance_type:
                continue  # serverless variants hold no instances
            count = float(max(variant.get("CurrentInstanceCount", 0), variant.get("DesiredInstanceCount", 0)))
            totals[instance_type] = totals.get(instance_type, 0.0) + count
            if (stack := ours.get(name)) is not None:
                mine = own.setdefault(stack, {})
                mine[instance_type] = mine.get(instance_type, 0.0) + count
    return totals, own


# ------------------------------------------------------------------------------------------ preflight


def preflight(
    deployments: Iterable[tuple[str, Any, bool | None]],
    clients: ClientFactory,
    *,
    now: dt.datetime | None = None,
) -> Report:
    """`deployments`: (stack name, spec, updating) of each deployment the plan or deploy applies."""
    all_needs = [n for stack, spec, updating in deployments for n in needs(stack, spec, updating=updating)]
    if not all_needs:
        return Report(True)
    readings, warnings = read(all_needs, clients, now=now)
    return Report(True, compare(all_needs, readings), warnings)


# The clients preflight reads with: None is tooling.aws.client (AWS, or whatever AWS_ENDPOINT_URL
# names). The one seam for tests: a factory handing out botocore Stubbers where the emulator has no model.
CLIENTS: ClientFactory | None = None


def _default_clients() -> ClientFactory:
    if CLIENTS is not None:
        return CLIENTS
    from tooling import aws  # noqa: PLC0415 - boto3 loads only for checks against AWS

    return aws.client


def specs(root: Path) -> dict[str, Any]:
    """Stack name -> spec of every valid deployment file under `root`."""
    from tooling import repository  # noqa: PLC0415

    return {f.stack_name: f.spec for f in repository.load(root).valid if f.spec is not None}


def for_plan(plan: Any, root: Path, clients: ClientFactory | None = None) -> Report:
    """The preflight of an aws plan: every stack it keeps or makes (a delete frees, an invalid stack
    deploys nothing), an unchanged one at its ceiling too, since it runs there beside the others."""
    spec_of = specs(root)
    chosen = [
        (s.stack_name, spec_of[s.stack_name], s.action != "no-change")
        for s in plan.stacks
        if s.action not in ("delete", "invalid") and s.stack_name in spec_of
    ]
    return preflight(chosen, clients or _default_clients())


def for_deploy(stack_names: Iterable[str], root: Path, clients: ClientFactory | None = None) -> Report:
    """The preflight of a deploy, before any change. Which stacks change is known only as each is
    deployed, so a SageMaker endpoint's second fleet during an update is a warning here (the plan,
    which knows, counts it)."""
    spec_of = specs(root)
    chosen = [(n, spec_of[n], None) for n in stack_names if n in spec_of]
    return preflight(chosen, clients or _default_clients())


OFFLINE_NOTE = "an offline plan reads no AWS; `plan --against aws` and `deploy` check them"
