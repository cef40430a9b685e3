"""The deployment spec (v1): the one definition of what a `deployments/<env>/<name>.yaml` may say.

The JSON Schema for editors and the field reference in the README are generated from these models.
Checks that involve one section live on that section's model; checks across sections are the `RULES`
at the end, which run on whatever sections are valid so that one run reports every error.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

from tooling import catalog, cron

SPEC_VERSION = 1
MANAGED_TAG_PREFIX = "deployctl:"


def fail(kind: str, message: str, *, hint: str = "", field: str = "") -> PydanticCustomError:
    """An error whose message we wrote. `field` narrows the location below the model that raised it."""
    return PydanticCustomError(kind, "{message}", {"message": message, "hint": hint, "field": field})


def did_you_mean(value: object, choices: list[str] | tuple[str, ...]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _text(kind: str, check: Callable[[str], tuple[str, str] | None], schema: dict[str, Any]) -> Any:
    """A string type checked by `check`, which returns (message, accepted) when the value is wrong."""

    def validate(value: str) -> str:
        if problem := check(value):
            raise fail(kind, problem[0], hint=problem[1])
        return value

    return Annotated[str, AfterValidator(validate), WithJsonSchema({"type": "string", **schema})]


def _pattern(kind: str, pattern: str, accepted: str, description: str = "") -> Any:
    compiled = re.compile(pattern)
    return _text(
        kind,
        lambda v: (
            None if compiled.fullmatch(v) else (f"'{v}' is not a valid {kind.replace('_', ' ')}", accepted)
        ),
        {"pattern": f"^{pattern}$", **({"description": description} if description else {})},
    )


# ---------------------------------------------------------------- scalar types


Name = _pattern(
    "deployment_name",
    r"[a-z][a-z0-9-]{2,31}",
    "3-32 characters: lowercase letters, digits and '-', starting with a letter",
)


def _region(value: str) -> tuple[str, str] | None:
    if value in catalog.regions():
        return None
    return f"'{value}' is not an AWS region{did_you_mean(value, sorted(catalog.regions()))}", "e.g. us-east-1"


Region = _text("region", _region, {"enum": sorted(catalog.regions())})


def _cidr(value: str) -> tuple[str, str] | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"'{value}' is not a CIDR block ({exc})", "e.g. 10.0.0.0/16 or 0.0.0.0/0"
        return f"'{value}' has host bits set", f"did you mean {fixed}?"
    if "/" not in value:
        return f"'{value}' has no prefix length", f"e.g. {value}/32"
    return None


Cidr = _text("cidr", _cidr, {"format": "cidr", "examples": ["10.0.0.0/8", "0.0.0.0/0"]})
VpcChoice = _pattern(
    "vpc", r"new|vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})", "'new', or vpc- followed by 8 or 17 hex digits"
)
SubnetId = _pattern(
    "subnet_id", r"subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})", "subnet- followed by 8 or 17 hex digits"
)
AcmArn = _pattern(
    "certificate_arn",
    r"arn:aws(?:-cn|-us-gov)?:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}",
    "arn:aws:acm:<region>:<account>:certificate/<uuid>",
)
SecretName = _pattern(
    "secret_name",
    r"(?:arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}",
    "the NAME (or ARN) of an existing Secrets Manager secret, e.g. multimodal/openai-api-key",
)
VllmVersion = _pattern("vllm_version", r"\d+\.\d+\.\d+(?:\.post\d+)?", 'a vLLM release such as "0.11.0"')
ServedName = _pattern(
    "served_name",
    r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}",
    "letters, digits and . _ : / -, up to 128 characters",
)


def _https_url(value: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"https://([A-Za-z0-9.-]+)(?::\d{1,5})?(/[^\s?#]*)?", value)
    if not match:
        return f"'{value}' is not an https:// URL", "e.g. https://api.openai.com/v1"
    if "." not in match.group(1):
        return f"'{value}' has no public host name", "e.g. https://api.openai.com/v1"
    return None


HttpsUrl = _text("https_url", _https_url, {"format": "uri", "pattern": "^https://"})


def _cron(value: str) -> tuple[str, str] | None:
    if error := cron.problem(value):
        return error, "AWS cron, 6 fields, UTC: e.g. 0 20 ? * MON-FRI *"
    return None


ScheduleName = _pattern(
    "schedule_name", r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", "letters, digits, _ and -, up to 64"
)
Cron = _text("cron", _cron, {"examples": ["0 20 ? * MON-FRI *"]})
TagKey = _pattern(
    "tag_key",
    r"(?!aws:)(?!deployctl:)[\w .:/=+\-@]{1,128}",
    "1-128 letters, digits, spaces and _ . : / = + - @, not starting with aws: or deployctl:",
)
TagValue = _pattern("tag_value", r"[\w .:/=+\-@]{0,256}", "0-256 letters, digits, spaces and _ . : / = + - @")
ArgName = _pattern(
    "vllm_flag", r"[a-z][a-z0-9_-]*", "a vLLM flag name without the leading --, e.g. max_num_seqs"
)


def _scalar(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    raise fail("scalar", "a vLLM flag takes a scalar value", hint="a string, number or true/false")


Scalar = Annotated[Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean"]})]

# Flags the platform sets itself from other fields; accepting them in `engine.args` would let two
# places disagree (the gateway would call a model name that vLLM does not serve, or the wrong port).
RESERVED_VLLM_ARGS = {
    "host": "the gateway owns the listening address",
    "port": "the gateway owns the listening port",
    "model": "set model.id",
    "served_model_name": "set model.served_name",
    "revision": "set model.revision",
    "max_model_len": "set model.max_model_len",
    "api_key": "keys are checked by the gateway from Secrets Manager",
}


# ---------------------------------------------------------------- sections


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Model(Section):
    id: str = Field(
        min_length=1,
        max_length=512,
        description="Hugging Face id (org/name) or s3://bucket/prefix/ of the weights; for engine external, "
        "the provider's model name.",
        examples=["meta-llama/Llama-3.1-8B-Instruct", "s3://my-models/llama-3.1-8b/", "gpt-4o"],
    )
    revision: str | None = Field(
        default=None, min_length=1, max_length=128, description="Hugging Face branch, tag or commit."
    )
    served_name: ServedName | None = Field(
        default=None, description='The "model" clients send. Default: the last part of `id`.'
    )
    max_model_len: int | None = Field(
        default=None, ge=256, le=10_000_000, description="Context length in tokens (vLLM only)."
    )
    token_secret: SecretName | None = Field(
        default=None,
        description="NAME of a Secrets Manager secret holding a Hugging Face token, for gated models.",
    )
    modalities: list[Literal["text", "image"]] = Field(
        default=["text"], min_length=1, max_length=2, description="What the model takes as input."
    )

    @model_validator(mode="after")
    def _unique_modalities(self) -> Model:
        if len(set(self.modalities)) != len(self.modalities):
            raise fail("duplicate", "modalities are listed twice", field="modalities")
        return self

    @property
    def served_model_name(self) -> str:
        if self.served_name:
            return self.served_name
        return self.id.rstrip("/").rsplit("/", 1)[-1]


class VllmEngine(Section):
    type: Literal["vllm"] = Field(description="vLLM's OpenAI server on a GPU, behind the gateway.")
    version: VllmVersion = Field(default="0.11.0", description="vLLM release of the GPU image.")
    args: dict[ArgName, Scalar] = Field(
        default_factory=dict,
        description="Extra vLLM flags, without the leading `--`, scalar values only.",
        examples=[{"gpu_memory_utilization": 0.9, "tensor_parallel_size": 1}],
    )

    @model_validator(mode="after")
    def _no_reserved_args(self) -> VllmEngine:
        for name in self.args:
            reason = RESERVED_VLLM_ARGS.get(name.replace("-", "_"))
            if reason:
                raise fail(
                    "reserved_flag", f"'{name}' is set by the platform", hint=reason, field=f"args.{name}"
                )
        return self


class ExternalEngine(Section):
    type: Literal["external"] = Field(
        description="An OpenAI-compatible provider reached through our gateway on Fargate."
    )
    base_url: HttpsUrl = Field(description="The provider's OpenAI base URL, including /v1.")
    provider_key_secret: SecretName = Field(
        description="NAME of an existing Secrets Manager secret holding the provider key; never the key."
    )


def _instance_check(table: dict[str, catalog.GpuInstance], prefix_hint: str = "") -> Any:
    families = sorted({i.name.rsplit(".", 1)[0] for i in table.values()})

    def check(value: str) -> tuple[str, str] | None:
        if value in table:
            return None
        if prefix_hint and f"{prefix_hint}{value}" in table:
            return (
                f"SageMaker instance types start with '{prefix_hint}'",
                f"did you mean '{prefix_hint}{value}'?",
            )
        return (
            f"'{value}' is not a supported GPU instance type{did_you_mean(value, list(table))}",
            f"families: {', '.join(families)}",
        )

    return check


Ec2GpuType = _text(
    "instance_type", _instance_check(catalog.EC2_GPU_INSTANCES), {"enum": list(catalog.EC2_GPU_INSTANCES)}
)
SagemakerGpuType = _text(
    "instance_type",
    _instance_check(catalog.SAGEMAKER_GPU_INSTANCES, "ml."),
    {"enum": list(catalog.SAGEMAKER_GPU_INSTANCES)},
)


class _GpuHost(Section):
    instance_type: Ec2GpuType = Field(description="An EC2 GPU instance type.", examples=["g5.xlarge"])
    spot: bool = Field(default=False, description="Run on Spot capacity (interruptible, cheaper).")
    volume_gib: int = Field(
        default=150, ge=30, le=16384, description="Root volume in GiB (gp3, encrypted): image plus weights."
    )

    @property
    def gpu(self) -> catalog.GpuInstance:
        return catalog.EC2_GPU_INSTANCES[self.instance_type]


class EcsGpuCompute(_GpuHost):
    service: Literal["ecs-gpu"] = Field(description="ECS on GPU EC2 instances (capacity provider).")


class Ec2Compute(_GpuHost):
    service: Literal["ec2"] = Field(description="An autoscaling group of GPU instances behind the ALB.")


class SagemakerCompute(Section):
    service: Literal["sagemaker"] = Field(description="A SageMaker real-time endpoint, our gateway in front.")
    instance_type: SagemakerGpuType = Field(
        description="A SageMaker GPU instance type (ml.*).", examples=["ml.g5.xlarge"]
    )

    @property
    def gpu(self) -> catalog.GpuInstance:
        return catalog.SAGEMAKER_GPU_INSTANCES[self.instance_type]


class FargateCompute(Section):
    service: Literal["ecs-fargate"] = Field(description="ECS on Fargate: the gateway alone, no GPU.")
    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = Field(default=1024, description="CPU units.")
    memory: int = Field(default=2048, description="MiB; must pair with cpu as Fargate allows.")
    architecture: Literal["arm64", "x86_64"] = Field(
        default="arm64", description="Graviton (arm64) by default."
    )
    ephemeral_storage_gib: int = Field(default=21, ge=21, le=200, description="Task storage in GiB.")

    @model_validator(mode="after")
    def _valid_pair(self) -> FargateCompute:
        choices = catalog.fargate_memory_choices(self.cpu)
        if self.memory not in choices:
            raise fail(
                "fargate_size",
                f"{self.memory} MiB is not a Fargate memory size for {self.cpu} CPU units",
                hint=f"with cpu {self.cpu}: {_sizes(choices)} MiB",
                field="memory",
            )
        return self


def _sizes(choices: list[int]) -> str:
    if len(choices) <= 4:
        return ", ".join(map(str, choices))
    return f"{choices[0]}-{choices[-1]} in steps of {choices[1] - choices[0]}"


Engine = Annotated[VllmEngine | ExternalEngine, Field(discriminator="type")]
Compute = Annotated[
    EcsGpuCompute | Ec2Compute | SagemakerCompute | FargateCompute, Field(discriminator="service")
]


class ScalingTarget(Section):
    cpu_percent: int | None = Field(default=None, ge=1, le=100, description="Average CPU utilisation.")
    memory_percent: int | None = Field(default=None, ge=1, le=100, description="Average memory utilisation.")
    requests_per_target: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Load balancer requests per target per minute."
    )
    invocations_per_instance: int | None = Field(
        default=None, ge=1, le=1_000_000, description="SageMaker invocations per instance per minute."
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> ScalingTarget:
        if all(value is None for _, value in self):
            raise fail("target", "name at least one target", hint=", ".join(type(self).model_fields))
        return self


class Schedule(Section):
    name: ScheduleName = Field(description="Unique within the deployment.")
    cron: Cron = Field(description="AWS cron, 6 fields, UTC.")
    min: int = Field(ge=0, le=1000, description="Minimum capacity from this time on.")
    max: int = Field(ge=0, le=1000, description="Maximum capacity from this time on.")

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if self.min > self.max:
            raise fail("range", f"min {self.min} is above max {self.max}", field="min")
        return self


class Scaling(Section):
    min: int = Field(default=1, ge=0, le=1000, description="Fewest tasks or instances (0..max).")
    max: int = Field(default=1, ge=1, le=1000, description="Most tasks or instances.")
    target: ScalingTarget | None = Field(
        default=None, description="Target-tracking policies; at least one when max > min."
    )
    scale_in_cooldown: int = Field(default=300, ge=0, le=86400, description="Seconds.")
    scale_out_cooldown: int = Field(default=60, ge=0, le=86400, description="Seconds.")
    schedules: list[Schedule] = Field(default_factory=list, max_length=20, description="Scheduled capacity.")

    @model_validator(mode="after")
    def _consistent(self) -> Scaling:
        if self.min > self.max:
            raise fail(
                "range", f"min {self.min} is above max {self.max}", hint="0 <= min <= max", field="min"
            )
        if self.max > self.min and self.target is None:
            raise fail(
                "target",
                f"max {self.max} > min {self.min} but no target says when to scale",
                hint="add scaling.target with e.g. cpu_percent: 70",
                field="max",
            )
        seen: set[str] = set()
        for index, schedule in enumerate(self.schedules):
            if schedule.name in seen:
                raise fail(
                    "duplicate",
                    f"schedule '{schedule.name}' is listed twice",
                    field=f"schedules[{index}].name",
                )
            seen.add(schedule.name)
        return self


class Network(Section):
    vpc: VpcChoice = Field(default="new", description="`new`, or an existing vpc-… id.")
    public_subnets: list[SubnetId] = Field(
        default_factory=list, description="Existing VPC: subnets for an internet-facing load balancer."
    )
    private_subnets: list[SubnetId] = Field(
        default_factory=list, description="Existing VPC: subnets for tasks and instances (at least 2 AZs)."
    )
    public: bool = Field(default=False, description="Internet-facing (true) or internal load balancer.")
    allowed_cidrs: list[Cidr] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Who may reach the load balancer. Default: the VPC for internal, anyone for public.",
    )
    certificate_arn: AcmArn | None = Field(default=None, description="ACM certificate for HTTPS.")
    nat_gateways: Literal[0, 1, 2] = Field(default=1, description="New VPC: 0, 1 or 2 (one per AZ).")
    vpc_endpoints: bool = Field(
        default=False, description="Interface endpoints for S3, ECR, Logs and Secrets Manager."
    )

    @model_validator(mode="after")
    def _subnets(self) -> Network:
        if self.vpc == "new":
            for name in ("public_subnets", "private_subnets"):
                if getattr(self, name):
                    raise fail(
                        "subnets",
                        "subnets are created with a new VPC",
                        hint="remove it or set vpc",
                        field=name,
                    )
            return self
        required = ["private_subnets"] + (["public_subnets"] if self.public else [])
        for name in required:
            subnets = getattr(self, name)
            if len(set(subnets)) < 2:
                raise fail(
                    "subnets",
                    f"an existing VPC needs {name} in at least two availability zones",
                    hint="list 2 or more distinct subnet ids",
                    field=name,
                )
        return self


class Auth(Section):
    api_keys: bool = Field(default=True, description="Clients need a Bearer key kept in Secrets Manager.")
    rotation_days: int = Field(default=30, ge=1, le=365, description="Days between key rotations.")


class Observability(Section):
    log_retention_days: int = Field(
        default=30,
        description="One of CloudWatch Logs' retention values.",
        json_schema_extra={"enum": list(catalog.LOG_RETENTION_DAYS)},
    )
    container_insights: bool = Field(default=True, description="ECS Container Insights.")
    alarm_email: EmailStr | None = Field(default=None, description="Alarm notifications go here.")

    @model_validator(mode="after")
    def _retention(self) -> Observability:
        if self.log_retention_days not in catalog.LOG_RETENTION_DAYS:
            nearest = min(catalog.LOG_RETENTION_DAYS, key=lambda d: abs(d - self.log_retention_days))
            raise fail(
                "retention",
                f"CloudWatch Logs cannot keep logs {self.log_retention_days} days",
                hint=f"nearest allowed: {nearest}; all: {', '.join(map(str, catalog.LOG_RETENTION_DAYS))}",
                field="log_retention_days",
            )
        return self


class Budget(Section):
    monthly_usd: float | None = Field(default=None, gt=0, le=10_000_000, description="Monthly budget in USD.")


class Deployment(Section):
    """One inference endpoint: `deployments/<environment>/<name>.yaml`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="deployctl deployment",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: Name = Field(description="Unique within its environment; the stack is <environment>-<name>.")
    description: str = Field(default="", max_length=256, description="What it is for.")
    owner: EmailStr = Field(description="Who answers for it (e-mail).")
    region: Region = Field(description="The AWS region it runs in.")
    model: Model
    engine: Engine
    compute: Compute
    scaling: Scaling = Field(default_factory=Scaling)
    network: Network = Field(default_factory=Network)
    auth: Auth = Field(default_factory=Auth)
    observability: Observability = Field(default_factory=Observability)
    budget: Budget | None = None
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict, max_length=40, description="Added to everything."
    )

    def stack_name(self, environment: str) -> str:
        return f"{environment}-{self.name}"


# ---------------------------------------------------------------- rules across sections


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


@rule
def tensor_parallel_fits_gpus(s: Sections) -> Iterator[Finding]:
    engine, compute = s.get("engine"), s.get("compute")
    if not (engine and compute and engine.type == "vllm" and hasattr(compute, "gpu")):
        return
    for flag in ("tensor_parallel_size", "tensor-parallel-size"):
        size = engine.args.get(flag)
        if size is None:
            continue
        gpus = compute.gpu.gpus
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            yield Finding("SPEC204", f"engine.args.{flag}", "tensor_parallel_size is a whole number of GPUs")
        elif size > gpus or gpus % size:
            yield Finding(
                "SPEC204",
                f"engine.args.{flag}",
                f"{compute.instance_type} has {gpus} GPU(s); tensor_parallel_size {size} does not fit",
                f"a divisor of {gpus}",
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
            "set network.certificate_arn" + ("" if prod else " (an error in prod)"),
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
    "ecs-fargate": {"cpu_percent", "memory_percent", "requests_per_target"},
    "ecs-gpu": {"cpu_percent", "memory_percent", "requests_per_target"},
    "ec2": {"cpu_percent", "requests_per_target"},
    "sagemaker": {"invocations_per_instance"},
}


@rule
def scaling_fits_service(s: Sections) -> Iterator[Finding]:
    scaling, compute = s.get("scaling"), s.get("compute")
    if not (scaling and compute):
        return
    allowed = _TARGETS_FOR_SERVICE[compute.service]
    if scaling.target:
        for name in sorted(scaling.target.model_fields_set):
            if getattr(scaling.target, name) is not None and name not in allowed:
                yield Finding(
                    "SPEC209",
                    f"scaling.target.{name}",
                    f"{compute.service} cannot scale on {name}",
                    f"{compute.service} scales on {', '.join(sorted(allowed))}",
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
        yield Finding(
            "SPEC215",
            "compute.instance_type",
            f"{compute.instance_type} is arm64: there is no ECS GPU-optimised AMI nor vLLM image for it",
            "an x86_64 GPU type such as g4dn.xlarge or g6.xlarge",
        )


@rule
def instance_offered_in_region(s: Sections) -> Iterator[Finding]:
    compute, region = s.get("compute"), s.get("region")
    if not (compute and region and hasattr(compute, "instance_type")):
        return
    offered = catalog.offered_instance_types(region, sagemaker=compute.service == "sagemaker")
    if offered is not None and compute.instance_type not in offered:
        family = compute.instance_type.rsplit(".", 1)[0] + "."
        alternatives = sorted(t for t in offered if t.startswith(family))
        yield Finding(
            "SPEC216",
            "compute.instance_type",
            f"{compute.instance_type} is not offered in {region}",
            f"{family[:-1]} sizes there: {', '.join(alternatives)}"
            if alternatives
            else "choose another region or type",
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
