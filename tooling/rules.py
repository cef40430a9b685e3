"""Rules across the sections of a spec: what no single section can check on its own.

Each rule is a function that yields `Finding`s for one concern, registered with `@rule`, in the manner
of cfn-lint's rules. They run on every section that validated by itself (`Sections`), so a file with
errors in several sections still hears about every cross-section problem it has.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tooling import catalog, cron


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one field. `field` is dotted, from the top of the spec."""

    code: str
    field: str
    message: str
    hint: str = ""
    warning: bool = False


@dataclass(frozen=True)
class Sections:
    """The sections of a spec that validated on their own; None where a section is invalid or absent."""

    environment: str
    values: dict[str, Any]

    def get(self, name: str) -> Any:
        return self.values.get(name)


Rule = Callable[[Sections], Iterator[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def named_types(compute: Any) -> list[tuple[str, str]]:
    """(field from the top of the spec, instance type) for each instance type a compute section names."""
    if hasattr(compute, "type_fields"):
        return [(f"compute.{field}", name) for field, name in compute.type_fields()]
    if getattr(compute, "instance_type", None):
        return [("compute.instance_type", compute.instance_type)]
    return []


_HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_S3_PREFIX = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?/")
_SERVICES_FOR_ENGINE = {"vllm": ("ecs-gpu", "ec2", "sagemaker"), "external": ("ecs-fargate",)}


@rule
def engine_runs_on_service(s: Sections) -> Iterator[Finding]:
    engine, compute = s.get("engine"), s.get("compute")
    if engine and compute and compute.service not in _SERVICES_FOR_ENGINE[engine.type]:
        allowed = " or ".join(_SERVICES_FOR_ENGINE[engine.type])
        yield Finding(
            "SPEC201",
            "compute.service",
            f"engine '{engine.type}' does not run on '{compute.service}'",
            f"use {allowed}",
        )


@rule
def model_id_fits_engine(s: Sections) -> Iterator[Finding]:
    model, engine = s.get("model"), s.get("engine")
    if not (model and engine):
        return
    if engine.type == "vllm":
        if not (_HF_ID.fullmatch(model.id) or _S3_PREFIX.fullmatch(model.id)):
            yield Finding(
                "SPEC202",
                "model.id",
                f"'{model.id}' is neither a Hugging Face id nor an s3:// prefix",
                "org/name, or s3://bucket/prefix/ ending in /",
            )
        if model.revision and model.id.startswith("s3://"):
            yield Finding(
                "SPEC203", "model.revision", "revision applies to Hugging Face ids, not s3:// weights"
            )
    else:
        if model.id.startswith("s3://") or any(c.isspace() for c in model.id):
            yield Finding(
                "SPEC202", "model.id", "an external engine takes the provider's model name", "e.g. gpt-4o"
            )
        for name in ("revision", "max_model_len"):
            if getattr(model, name) is not None:
                yield Finding("SPEC203", f"model.{name}", f"{name} applies to vllm engines only")


# vLLM's parallel sizes multiply into the GPUs one server uses
# (https://docs.vllm.ai/en/latest/serving/distributed_serving.html).
PARALLEL_ARGS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")


def parallel_sizes(args: dict[str, Any]) -> dict[str, Any]:
    """The parallel sizes the spec's engine args set, by their underscore name."""
    return {
        name: args[spelling]
        for name in PARALLEL_ARGS
        for spelling in (name, name.replace("_", "-"))
        if spelling in args
    }


def default_tensor_parallel(gpus: int, sizes: dict[str, Any]) -> int:
    """tensor_parallel_size when the spec leaves it out: the GPUs the other parallel sizes leave over."""
    others = 1
    for name in ("pipeline_parallel_size", "data_parallel_size"):
        size = sizes.get(name, 1)
        others *= size if isinstance(size, int) and size >= 1 else 1
    return max(1, gpus // others)


@rule
def tensor_parallel_fits_gpus(s: Sections) -> Iterator[Finding]:
    """Every GPU target gives vLLM's container all of the instance's GPUs (ECS reserves them all for the
    task, docker runs with --gpus all, SageMaker hands over the instance): the parallel sizes must use
    exactly those. More cannot start; fewer leave GPUs paid for and idle. tensor_parallel_size defaults
    to the instance's GPU count (templates/engine.py)."""
    engine, compute = s.get("engine"), s.get("compute")
    if not (engine and compute and engine.type == "vllm" and hasattr(compute, "gpu")):
        return
    gpus = compute.gpu.gpus
    sizes = parallel_sizes(engine.args)
    flag = {n: next(f for f in (n, n.replace("_", "-")) if f in engine.args) for n in sizes}
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            yield Finding("SPEC204", f"engine.args.{flag[name]}", f"{name} is a whole number of GPUs")
            return
    if not sizes:
        return
    sizes.setdefault("tensor_parallel_size", default_tensor_parallel(gpus, sizes))
    used = 1
    for size in sizes.values():
        used *= size
    if used != gpus:
        shown = " × ".join(f"{n} {v}" for n, v in sizes.items())
        field = flag.get("tensor_parallel_size") or next(iter(flag.values()))
        yield Finding(
            "SPEC204",
            f"engine.args.{field}",
            f"{compute.gpu.name} has {gpus} GPU(s), all given to vLLM; {shown} uses {used}: "
            + ("it cannot start" if used > gpus else f"{gpus - used} GPU(s) would idle"),
            f"make the product {gpus}, e.g. tensor_parallel_size: {gpus} (the default), or choose an "
            f"instance type with {used} GPU(s)",
        )


# vLLM's default share of each GPU's memory for weights, activations and the KV cache
# (https://docs.vllm.ai/en/latest/models/engine_args.html, --gpu-memory-utilization).
VLLM_GPU_MEMORY_UTILIZATION = 0.9


@rule
def weights_fit_gpu_memory(s: Sections) -> Iterator[Finding]:
    """Weights larger than the GPU memory vLLM may use never load: the task starts, fails, and is
    replaced until the deployment's circuit breaker or signal timeout gives up. The size is estimated
    from the parameter count in the model's name at 16 bits a parameter (the cost estimate's own
    estimate), so this is a warning: quantised weights are smaller."""
    from tooling.cost.estimate import named_weights_gb  # noqa: PLC0415 - the estimate loads rich

    model, engine, compute = s.get("model"), s.get("engine"), s.get("compute")
    if not (model and engine and compute and engine.type == "vllm" and hasattr(compute, "gpu")):
        return
    weights_gb = named_weights_gb(model.id)
    if weights_gb is None:
        return
    sizes = parallel_sizes(engine.args)
    # Every type of a group has the first one's GPU count (spec: instance_types), so one parallel layout.
    tp = sizes.get("tensor_parallel_size", default_tensor_parallel(compute.gpu.gpus, sizes))
    pp = sizes.get("pipeline_parallel_size", 1)
    utilization = engine.args.get("gpu_memory_utilization", engine.args.get("gpu-memory-utilization"))
    if not isinstance(utilization, int | float) or isinstance(utilization, bool) or not 0 < utilization <= 1:
        utilization = VLLM_GPU_MEMORY_UTILIZATION
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (tp, pp)):
        return  # SPEC204 says so
    weights_gib = weights_gb * 1e9 / 2**30
    table = catalog.SAGEMAKER_GPU_INSTANCES if compute.service == "sagemaker" else catalog.EC2_GPU_INSTANCES
    for field, name in named_types(compute):
        gpu = table[name]
        # One replica's weights are sharded over tensor_parallel_size × pipeline_parallel_size GPUs.
        usable_gib = gpu.gpu_memory_gib * utilization * tp * pp
        if weights_gib > usable_gib:
            yield Finding(
                "SPEC224",
                field,
                f"{model.id} has about {weights_gib:.0f} GiB of 16-bit weights; {name} gives "
                f"vLLM {usable_gib:.1f} GiB ({tp * pp} × {gpu.gpu_memory_gib} GiB {gpu.gpu} "
                f"× gpu_memory_utilization {utilization:g}): the model cannot load, let alone hold a "
                "KV cache",
                "a GPU type with more memory (tooling/catalog.py lists them), or quantised weights",
                warning=True,
            )


@rule
def gpu_ami_is_pinned_in_prod(s: Sections) -> Iterator[Finding]:
    """An unpinned GPU AMI is an SSM parameter CloudFormation resolves again on every update: the first
    deploy after AWS publishes a new one replaces every instance, whatever the change was about."""
    compute = s.get("compute")
    if s.environment == "prod" and compute and compute.service in ("ecs-gpu", "ec2") and not compute.ami_id:
        yield Finding(
            "SPEC225",
            f"compute.{compute.type_field}",
            "the GPU AMI follows AWS's recommended image: any deploy after a new one is published replaces "
            "every instance (an image pull and model load each), without the plan saying so",
            "pin compute.ami_id (aws ssm get-parameters --names "
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id)",
            warning=True,
        )


@rule
def certificate_in_region(s: Sections) -> Iterator[Finding]:
    network, region = s.get("network"), s.get("region")
    if network and region and network.certificate_arn:
        cert_region = network.certificate_arn.split(":")[3]
        if cert_region != region:
            yield Finding(
                "SPEC205",
                "network.certificate_arn",
                f"the certificate is in {cert_region}, the deployment in {region}",
                "an ALB uses an ACM certificate from its own region",
            )


@rule
def public_endpoint_is_protected(s: Sections) -> Iterator[Finding]:
    network, auth = s.get("network"), s.get("auth")
    if not (network and network.public):
        return
    prod = s.environment == "prod"
    if not network.certificate_arn:
        yield Finding(
            "SPEC206",
            "network.public",
            "a public endpoint without certificate_arn serves keys and prompts over plain HTTP",
            "set network.certificate_arn and network.domain_name" + ("" if prod else " (an error in prod)"),
            warning=not prod,
        )
    if auth and not auth.api_keys:
        yield Finding(
            "SPEC207",
            "auth.api_keys",
            "a public endpoint without API keys lets anyone spend your GPUs",
            "set auth.api_keys: true" + ("" if prod else " (an error in prod)"),
            warning=not prod,
        )


@rule
def private_subnets_reach_out(s: Sections) -> Iterator[Finding]:
    network, engine, model = s.get("network"), s.get("engine"), s.get("model")
    if not (network and network.vpc == "new" and network.nat_gateways == 0):
        return
    if engine and engine.type == "external":
        yield Finding(
            "SPEC208",
            "network.nat_gateways",
            "without a NAT gateway the gateway cannot reach the external provider",
            "nat_gateways: 1",
        )
    elif model and not model.id.startswith("s3://"):
        yield Finding(
            "SPEC208",
            "network.nat_gateways",
            "without a NAT gateway the weights cannot be downloaded from Hugging Face",
            "nat_gateways: 1, or weights from s3:// with vpc_endpoints: true",
        )
    if not network.vpc_endpoints:
        yield Finding(
            "SPEC208",
            "network.nat_gateways",
            "without a NAT gateway or VPC endpoints, tasks cannot pull images or write logs",
            "nat_gateways: 1 or vpc_endpoints: true",
        )


_TARGETS_FOR_SERVICE = {
    "ecs-fargate": {"cpu_percent", "memory_percent", "requests_per_target", "requests_in_flight_per_task"},
    # vLLM's load is on the GPU: host CPU and memory do not follow it (the weights and KV cache are
    # allocated up front), and the GPU task reserves no CPU, so ECS's service CPU utilisation, which is
    # "CPU units used / CPU units specified in the task definition"
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_utilization.html), has no
    # denominator. Requests per target, and the gateway's and vLLM's own gauges, track a GPU server's load.
    "ecs-gpu": {
        "requests_per_target",
        "requests_in_flight_per_task",
        "queue_depth_per_task",
        "kv_cache_percent",
    },
    "ec2": {"requests_per_target", "requests_in_flight_per_task", "queue_depth_per_task", "kv_cache_percent"},
    "sagemaker": {"invocations_per_instance", "concurrent_requests_per_model"},
}
# The LLM-aware signals (SPEC250-253): the gateway's gauges (inference_server/engine_metrics.py, names
# in templates/gateway_metrics.py) and SageMaker's own concurrency metric.
LLM_SIGNALS = (
    "requests_in_flight_per_task",
    "queue_depth_per_task",
    "kv_cache_percent",
    "concurrent_requests_per_model",
)
_ENGINE_SIGNALS = ("queue_depth_per_task", "kv_cache_percent")
# vLLM preempts running sequences once the KV cache has no free block: a target this close to full
# asks for capacity only after requests are already being preempted.
KV_CACHE_TARGET_WARNING = 90


_HOST_METRICS = {"cpu_percent": "CPU", "memory_percent": "memory"}


@rule
def scaling_fits_service(s: Sections) -> Iterator[Finding]:
    scaling, compute = s.get("scaling"), s.get("compute")
    if not (scaling and compute):
        return
    allowed = _TARGETS_FOR_SERVICE[compute.service]
    if scaling.target:
        for name in sorted(scaling.target.model_fields_set - set(LLM_SIGNALS)):
            if getattr(scaling.target, name) is not None and name not in allowed:
                gpu_host = compute.service in ("ecs-gpu", "ec2") and name in _HOST_METRICS
                yield Finding(
                    "SPEC209",
                    f"scaling.target.{name}",
                    f"{compute.service} cannot scale on {name}"
                    + (
                        ": vLLM's load is on the GPU, and host " + _HOST_METRICS[name] + " does not follow it"
                        if gpu_host
                        else ""
                    ),
                    f"{compute.service} scales on {', '.join(sorted(allowed))}"
                    + (
                        " (e.g. requests_per_target: 100, requests a minute per instance)" if gpu_host else ""
                    ),
                )
    if compute.service == "sagemaker":
        if scaling.min < 1:
            yield Finding(
                "SPEC210", "scaling.min", "a SageMaker endpoint keeps at least 1 instance", "min: 1"
            )
        for index, schedule in enumerate(scaling.schedules):
            if schedule.min < 1:
                yield Finding(
                    "SPEC210",
                    f"scaling.schedules[{index}].min",
                    "a SageMaker endpoint keeps at least 1 instance",
                    "min: 1",
                )
    elif scaling.min == 0 and not any(sched.min > 0 for sched in scaling.schedules):
        yield Finding(
            "SPEC211",
            "scaling.min",
            "min 0 with no schedule that raises it: nothing will ever start a task",
            "min: 1, or a schedule with min >= 1",
            warning=True,
        )


@rule
def llm_signals_fit_service(s: Sections) -> Iterator[Finding]:
    """Which of the gateway's and SageMaker's load signals each target can scale on, and why not."""
    scaling, compute = s.get("scaling"), s.get("compute")
    if not (scaling and compute and scaling.target):
        return
    service, target = compute.service, scaling.target
    chosen = [name for name in LLM_SIGNALS if getattr(target, name) is not None]
    supported = ", ".join(sorted(_TARGETS_FOR_SERVICE[service]))
    for name in chosen:
        field = f"scaling.target.{name}"
        if service == "ecs-fargate" and name in _ENGINE_SIGNALS:
            yield Finding(
                "SPEC250",
                field,
                f"ecs-fargate cannot scale on {name}: the engine is an external provider, whose queue and "
                "KV cache the gateway cannot read",
                f"ecs-fargate scales on {supported} (e.g. requests_in_flight_per_task: 50)",
            )
        elif service == "sagemaker" and name != "concurrent_requests_per_model":
            yield Finding(
                "SPEC251",
                field,
                f"sagemaker cannot scale on {name}: the endpoint's instances are what scales, and vLLM runs "
                "inside SageMaker, where the gateway's tasks in front of it cannot read its gauges",
                f"sagemaker scales on {supported} (e.g. concurrent_requests_per_model: 8, which SageMaker "
                "counts in each model container, queued requests included)",
            )
        elif service != "sagemaker" and name == "concurrent_requests_per_model":
            yield Finding(
                "SPEC252",
                field,
                f"{service} cannot scale on concurrent_requests_per_model: it is SageMaker's metric of a "
                "model container",
                f"{service} scales on {supported}"
                + (" (e.g. requests_in_flight_per_task: 16)" if service != "ecs-fargate" else ""),
            )
    kv = target.kv_cache_percent
    if kv is not None and kv > KV_CACHE_TARGET_WARNING and service in ("ecs-gpu", "ec2"):
        yield Finding(
            "SPEC253",
            "scaling.target.kv_cache_percent",
            f"a KV cache target of {kv}% asks for capacity only once vLLM is about to preempt requests "
            "(it does when no cache block is free)",
            f"at most {KV_CACHE_TARGET_WARNING}, e.g. kv_cache_percent: 75",
            warning=True,
        )


@rule
def ec2_schedules_convert(s: Sections) -> Iterator[Finding]:
    """EC2 Auto Scaling takes five-field Unix cron: no year, and none of L, W or #."""
    scaling, compute = s.get("scaling"), s.get("compute")
    if not (scaling and compute and compute.service == "ec2"):
        return
    for index, schedule in enumerate(scaling.schedules):
        fields = cron.normalise(schedule.cron).split(" ")
        if fields[5] != "*" or any(mark in f for f in (fields[2], fields[4]) for mark in ("L", "W", "#")):
            yield Finding(
                "SPEC213",
                f"scaling.schedules[{index}].cron",
                "an ec2 autoscaling group takes no year, L, W or # in its schedule",
                "use * for the year and plain days",
            )


@rule
def internal_endpoint_has_sources(s: Sections) -> Iterator[Finding]:
    network = s.get("network")
    if network and network.vpc != "new" and not network.public and not network.allowed_cidrs:
        yield Finding(
            "SPEC214",
            "network.allowed_cidrs",
            "an internal endpoint in an existing VPC needs the CIDRs allowed to reach it",
            "e.g. allowed_cidrs: [10.0.0.0/8]",
        )


@rule
def gpu_image_exists_for_architecture(s: Sections) -> Iterator[Finding]:
    compute = s.get("compute")
    if compute and compute.service in ("ecs-gpu", "ec2") and compute.gpu.architecture == "arm64":
        # Every type of a group shares the first one's architecture (spec: instance_types).
        yield Finding(
            "SPEC215",
            f"compute.{compute.type_field}",
            f"{compute.gpu.name} is arm64: there is no ECS GPU-optimised AMI nor vLLM image for it",
            "an x86_64 GPU type such as g4dn.xlarge or g6.xlarge",
        )


@rule
def instance_offered_in_region(s: Sections) -> Iterator[Finding]:
    compute, region = s.get("compute"), s.get("region")
    if not (compute and region):
        return
    offered = catalog.offered_instance_types(region, sagemaker=compute.service == "sagemaker")
    if offered is None:
        return
    for field, name in named_types(compute):
        if name in offered:
            continue
        family = name.rsplit(".", 1)[0] + "."
        alternatives = sorted(t for t in offered if t.startswith(family))
        yield Finding(
            "SPEC216",
            field,
            f"{name} is not offered in {region}",
            f"{family[:-1]} sizes there: {', '.join(alternatives)}"
            if alternatives
            else "choose another region or type",
        )


@rule
def spot_above_the_base(s: Sections) -> Iterator[Finding]:
    """OnDemandBaseCapacity counts instances, and the group never holds more than its MaxSize: a base at
    the most scaling can ask for leaves Spot only the one instance a deploy adds for a moment."""
    compute, scaling = s.get("compute"), s.get("scaling")
    if not (compute and scaling and getattr(compute, "spot", False) and compute.on_demand_base):
        return
    ceiling = max([scaling.max, *(schedule.max for schedule in scaling.schedules)])
    if compute.on_demand_base >= ceiling:
        yield Finding(
            "SPEC264",
            "compute.on_demand_base",
            f"on_demand_base {compute.on_demand_base} is at or above the most instances scaling asks for "
            f"({ceiling}): every serving instance is on-demand, and spot buys nothing",
            f"an on_demand_base below {ceiling} (e.g. scaling.min, {scaling.min}), or spot: false",
            warning=True,
        )


@rule
def nat_ignored_with_existing_vpc(s: Sections) -> Iterator[Finding]:
    network = s.get("network")
    if network and network.vpc != "new" and "nat_gateways" in network.model_fields_set:
        yield Finding(
            "SPEC217",
            "network.nat_gateways",
            "ignored: an existing VPC brings its own NAT gateways",
            "remove it (a _defaults.yaml value may be what sets it)",
            warning=True,
        )


# ---- the price table (tooling/cost/table.py, written by `deployctl prices refresh`)


@rule
def instance_priced_in_region(s: Sections) -> Iterator[Finding]:
    """A type cfn-lint lists for the region but the AWS Price List does not price on demand there is not
    sold on demand (p5e, for one, only through Capacity Blocks); where the table read the region only
    in part, a type without a price is left out of the estimate, and the author hears so."""
    from tooling.cost import table  # noqa: PLC0415 - the price table loads only for instance types

    compute, region = s.get("compute"), s.get("region")
    if not (compute and region):
        return
    sagemaker = compute.service == "sagemaker"
    listed = catalog.offered_instance_types(region, sagemaker=sagemaker)
    section = "sagemaker" if sagemaker else "ec2"
    priced = table.offered(region, section)
    for field, name in named_types(compute):
        if listed is not None and name not in listed:
            continue  # SPEC216 says it
        if priced is not None:
            if name not in priced:
                family = name.rsplit(".", 1)[0] + "."
                alternatives = sorted(t for t in priced if t.startswith(family))
                yield Finding(
                    "SPEC240",
                    field,
                    f"{name} has no on-demand price in {region} in the AWS Price List: "
                    "it is not sold on demand there",
                    f"{family[:-1]} sizes priced there: {', '.join(alternatives)}"
                    if alternatives
                    else "choose another region or type",
                )
            continue
        try:
            table.lookup(region, section, name)
        except table.MissingPrice:
            yield Finding(
                "SPEC241",
                field,
                f"{name} has no {region} price in tooling/data/prices.yaml: "
                "the estimate leaves its compute out",
                "run `deployctl prices refresh` (the weekly prices workflow does)",
                warning=True,
            )


@rule
def https_has_its_name(s: Sections) -> Iterator[Finding]:
    """TLS clients check the certificate against the name they call: the ALB's own name never matches."""
    network = s.get("network")
    if not network:
        return
    if network.certificate_arn and not network.domain_name:
        yield Finding(
            "SPEC218",
            "network.certificate_arn",
            "HTTPS needs network.domain_name: clients verify the certificate against the name they "
            "call, and the load balancer's own DNS name is not on your certificate",
            "set domain_name to the name the certificate covers, e.g. llm.example.com; "
            "with hosted_zone_id the stack also creates its DNS record",
        )
    if network.domain_name and not network.certificate_arn:
        yield Finding(
            "SPEC218",
            "network.domain_name",
            "domain_name names the HTTPS endpoint, and there is no certificate_arn",
            "add the ACM certificate for this name, or remove domain_name: without a certificate "
            "the endpoint is http:// at the load balancer's own name",
        )


@rule
def endpoints_in_a_vpc_we_do_not_own(s: Sections) -> Iterator[Finding]:
    """Only one interface endpoint per service in a VPC may have private DNS; another one fails to create."""
    network = s.get("network")
    if not network:
        return
    if network.vpc == "new":
        if network.endpoint_private_dns is not None:
            yield Finding(
                "SPEC219",
                "network.endpoint_private_dns",
                "ignored: a VPC this stack creates always gives its endpoints private DNS",
                "remove it: it applies to an existing VPC",
                warning=True,
            )
        return
    if network.vpc_endpoints and not network.endpoint_private_dns:
        yield Finding(
            "SPEC219",
            "network.vpc_endpoints",
            "no interface endpoints are created in a VPC this stack does not own: private DNS for a "
            "service the VPC (or another deployment) already has an endpoint for fails the stack",
            "if this VPC has no endpoints for ECR, Logs and Secrets Manager, set "
            "endpoint_private_dns: true; otherwise remove vpc_endpoints: the VPC's own endpoints serve",
            warning=True,
        )
    elif network.endpoint_private_dns and not network.vpc_endpoints:
        yield Finding(
            "SPEC219",
            "network.endpoint_private_dns",
            "ignored without vpc_endpoints: true",
            "set vpc_endpoints: true, or remove it",
            warning=True,
        )


# InvokeEndpoint: "A customer's model containers must respond to requests within 60 seconds"
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html).
SAGEMAKER_INVOKE_SECONDS = 60


@rule
def sagemaker_answers_within_its_limit(s: Sections) -> Iterator[Finding]:
    compute = s.get("compute")
    if compute and compute.service == "sagemaker":
        yield Finding(
            "SPEC222",
            "compute.service",
            f"SageMaker ends a non-streamed request after {SAGEMAKER_INVOKE_SECONDS} s: a generation "
            "that takes longer fails with 504",
            "clients that may generate long answers should stream (stream: true); ecs-gpu has no such limit",
            warning=True,
        )


# Docker's default bridge on the ec2 target's instances; a VPC range overlapping it is unreachable from
# the container (https://docs.docker.com/engine/network/drivers/bridge/).
DOCKER_BRIDGE = ipaddress.ip_network("172.17.0.0/16")


@rule
def vpc_range_clear_of_docker(s: Sections) -> Iterator[Finding]:
    network, compute = s.get("network"), s.get("compute")
    if not (network and compute and network.vpc == "new" and compute.service == "ec2"):
        return
    if ipaddress.ip_network(network.vpc_cidr).overlaps(DOCKER_BRIDGE):
        yield Finding(
            "SPEC223",
            "network.vpc_cidr",
            f"{network.vpc_cidr} overlaps Docker's bridge network ({DOCKER_BRIDGE}), which the ec2 "
            "target's container runs on: it could not reach addresses in its own VPC",
            "a range outside 172.17.0.0/16, e.g. 10.20.0.0/16",
        )


# Quotas a spec can reach, checked before AWS refuses them mid-deploy (issue 14 #11). Quota names and
# codes as the Service Quotas console lists them.
SG_RULES_QUOTA = 60  # Amazon VPC "Inbound or outbound rules per security group", L-0EA8095F
SG_RULES_DOC = (
    "https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups"
)


@rule
def load_balancer_rules_fit_quota(s: Sections) -> Iterator[Finding]:
    """The load balancer's security group holds one inbound rule per allowed CIDR and port (443 and
    80 with a certificate, 80 without). AWS counts IPv4 and IPv6 rules separately, 60 each by default."""
    network = s.get("network")
    if not network or not network.allowed_cidrs:
        return
    ports = 2 if network.certificate_arn else 1
    v6 = sum(1 for c in network.allowed_cidrs if ":" in str(c))
    for family, count in (("IPv4", (len(network.allowed_cidrs) - v6) * ports), ("IPv6", v6 * ports)):
        if count > SG_RULES_QUOTA:
            yield Finding(
                "SPEC245",
                "network.allowed_cidrs",
                f"{count} {family} inbound rules ({count // ports} CIDRs × {ports} port(s)) exceed the quota "
                f"'Inbound or outbound rules per security group' (L-0EA8095F, {SG_RULES_QUOTA} by default)",
                f"list at most {SG_RULES_QUOTA // ports} {family} CIDRs (merge them into wider blocks), "
                f"or raise the quota first: {SG_RULES_DOC}",
            )
