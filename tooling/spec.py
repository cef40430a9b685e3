"""The deployment spec (v1): the one definition of what a `deployments/<env>/<name>.yaml` may say.

The JSON Schema for editors and the field reference in the README are generated from these models.
Checks that involve one section live on that section's model; checks across sections are the rules in
`tooling/rules.py`, which run on whatever sections are valid so that one run reports every error.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
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


def fail(kind: str, message: str, *, hint: str = "", field: str = "", code: str = "") -> PydanticCustomError:
    """An error whose message we wrote. `field` narrows the location below the model that raised it;
    `code` is its SPEC code when the check has one of its own (else the generic SPEC005)."""
    context = {"message": message, "hint": hint, "field": field, **({"code": code} if code else {})}
    return PydanticCustomError(kind, "{message}", context)


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
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_SECRET_ARN = re.compile(r"arn:aws(?:-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:(.+)")
# Secrets Manager appends "-" and six random characters to the name in every secret's ARN.
_FULL_ARN_SUFFIX = re.compile(r".+-[A-Za-z0-9]{6}")
SECRET_FORMS = "the NAME of an existing Secrets Manager secret (e.g. multimodal/openai-api-key), or its ARN"  # noqa: S105 - what is accepted, no secret


def _secret(value: str) -> tuple[str, str] | None:
    """A secret's name, or its complete ARN: what ECS resolves in `Secrets[].ValueFrom` and IAM can scope to.

    ECS takes the full ARN or, in the task's region, the name; the `:json-key:version-stage:version-id`
    suffixes would hand the gateway part of a secret, so they are refused rather than passed on.
    """
    match = _SECRET_ARN.fullmatch(value)
    if not match:
        if value.startswith("arn:"):
            return f"'{value}' is not a Secrets Manager secret ARN", SECRET_FORMS
        if not _SECRET_NAME.fullmatch(value):
            return f"'{value}' is not a valid secret name", SECRET_FORMS
        return None
    name = match.group(1)
    if ":" in name:
        return (
            "a JSON key, version stage or version id after the secret's ARN is not supported",
            "the secret's full ARN alone: the whole secret value is the key",
        )
    if not _SECRET_NAME.fullmatch(name):
        return f"'{name}' is not a valid secret name", SECRET_FORMS
    if not _FULL_ARN_SUFFIX.fullmatch(name):
        return (
            "a partial ARN (without the six random characters Secrets Manager appends) cannot be resolved",
            "the full ARN, as DescribeSecret returns it, or just the secret's name",
        )
    return None


SecretName = _text("secret_name", _secret, {"description": SECRET_FORMS})


def _domain(value: str) -> tuple[str, str] | None:
    accepted = "a DNS name such as api.example.com: lowercase labels of letters, digits and '-'"
    labels = value.split(".")
    if value != value.lower():
        return f"'{value}' has capital letters", accepted.replace("a DNS name such as", "e.g.")
    if value.startswith("*"):
        return "the endpoint is one name, not a wildcard", "the name clients call, e.g. api.example.com"
    if (
        len(value) > 253
        or len(labels) < 2
        or not all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels)
    ):
        return f"'{value}' is not a DNS name", accepted
    return None


DomainName = _text("domain_name", _domain, {"examples": ["llm.example.com"]})
HostedZoneId = _pattern(
    "hosted_zone_id", r"Z[A-Z0-9]{1,31}", "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ"
)
# The new VPC's four subnets are sixteenths of its range (templates/network.py): at /22 each is a /26,
# room for the load balancer (AWS wants /27 and 8 free addresses), VPC endpoints and tasks.
VPC_PREFIXES = (16, 22)
DEFAULT_VPC_CIDR = "10.0.0.0/16"
_PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _vpc_cidr(value: str) -> tuple[str, str] | None:
    if problem := _cidr(value):
        return problem
    network = ipaddress.ip_network(value)
    accepted = f"a private (RFC 1918) range from /{VPC_PREFIXES[0]} to /{VPC_PREFIXES[1]}, e.g. 10.20.0.0/16"
    if network.version != 4 or not any(network.subnet_of(r) for r in _PRIVATE_RANGES):
        return f"'{value}' is not a private (RFC 1918) IPv4 range", accepted
    if not VPC_PREFIXES[0] <= network.prefixlen <= VPC_PREFIXES[1]:
        return f"a /{network.prefixlen} does not fit the VPC's four subnets", accepted
    return None


VpcCidr = _text("vpc_cidr", _vpc_cidr, {"format": "cidr", "examples": ["10.20.0.0/16"]})


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


AmiId = _pattern("ami_id", r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})", "ami- followed by 8 or 17 hex digits")


# EC2 Auto Scaling takes at most 40 instance types in a mixed instances policy's overrides
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-mixed-instances-groups.html).
MAX_INSTANCE_TYPES = 40


class _GpuHost(Section):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Exactly one of the two: what the validator below enforces, for editors too.
        json_schema_extra={"oneOf": [{"required": ["instance_type"]}, {"required": ["instance_types"]}]},
    )

    instance_type: Ec2GpuType | None = Field(
        default=None,
        description="An EC2 GPU instance type; or instance_types, for a group that falls back to others.",
        examples=["g5.xlarge"],
    )
    instance_types: list[Ec2GpuType] | None = Field(
        default=None,
        max_length=MAX_INSTANCE_TYPES,
        json_schema_extra={"minItems": 2, "uniqueItems": True},
        description="Instead of instance_type: two or more GPU types, highest priority first, for when "
        "EC2 has no capacity of the first. On-demand instances are launched in this order; Spot ones from "
        "the pools with the most spare capacity at the lowest price (price-capacity-optimized). Each "
        "type needs the first one's GPU count and CPU architecture, and bfloat16 on all or none; the "
        "ECS task is sized to the smallest host memory among them.",
        examples=[["g6.xlarge", "g5.xlarge"]],
    )
    ami_id: AmiId | None = Field(
        default=None,
        description="Pin the ECS GPU-optimised AMI (an x86_64 image from "
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended). Without it every stack update "
        "resolves the newest recommended AMI, and a new one replaces every instance.",
        examples=["ami-0123456789abcdef0"],
    )
    spot: bool = Field(
        default=False,
        description="Run on Spot capacity (interruptible, cheaper): every instance above on_demand_base. "
        "With on_demand_base 0 (the default), all of them.",
    )
    on_demand_base: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="With spot: the first this many instances of the group are on-demand, and only the "
        "capacity above them is Spot (e.g. scaling.min, so the floor survives a Spot reclaim). Without "
        "spot every instance is on-demand and this does not apply.",
    )
    volume_gib: int = Field(
        default=150, ge=30, le=16384, description="Root volume in GiB (gp3, encrypted): image plus weights."
    )

    @model_validator(mode="after")
    def _instance_types(self) -> _GpuHost:
        accepted = (
            "instance_type: g5.xlarge, or instance_types: [g6.xlarge, g5.xlarge] (highest priority first)"
        )
        if self.instance_type and self.instance_types is not None:
            raise fail(
                "instance_types",
                "instance_type and instance_types are both set",
                hint=f"keep one: {accepted}",
                field="instance_types",
                code="SPEC260",
            )
        if not self.instance_type and self.instance_types is None:
            raise fail(
                "instance_types",
                "no instance type is named",
                hint=accepted,
                field="instance_type",
                code="SPEC260",
            )
        if self.instance_types is not None:
            if len(self.instance_types) < 2:
                raise fail(
                    "instance_types",
                    "instance_types lists fallbacks: one type alone is instance_type",
                    hint=f"instance_type: {self.instance_types[0]}" if self.instance_types else accepted,
                    field="instance_types",
                    code="SPEC261",
                )
            first = catalog.EC2_GPU_INSTANCES[self.instance_types[0]]
            for index, name in enumerate(self.instance_types):
                if name in self.instance_types[:index]:
                    raise fail(
                        "instance_types",
                        f"{name} is listed twice",
                        hint="each type once, highest priority first",
                        field=f"instance_types[{index}]",
                        code="SPEC261",
                    )
                if problem := catalog.interchangeable(first, catalog.EC2_GPU_INSTANCES[name]):
                    others = catalog.stand_ins(first)
                    raise fail(
                        "instance_types",
                        f"{problem}: every instance of the group runs the same vLLM server on all its GPUs",
                        hint=f"types that can follow {first.name}: {', '.join(others)}"
                        if others
                        else f"no other type can follow {first.name}; use instance_type",
                        field=f"instance_types[{index}]",
                        code="SPEC262",
                    )
        # Not model_fields_set: a dumped spec (0 written out) validates again as it was.
        if self.on_demand_base and not self.spot:
            raise fail(
                "on_demand_base",
                "on_demand_base counts the on-demand instances below the Spot ones, and spot is false: "
                "every instance is on-demand already",
                hint="set spot: true to run the capacity above it on Spot, or remove on_demand_base",
                field="on_demand_base",
                code="SPEC263",
            )
        return self

    @property
    def types(self) -> tuple[str, ...]:
        """The instance types the group may launch, highest priority first (one without fallbacks)."""
        return tuple(self.instance_types) if self.instance_types else (str(self.instance_type),)

    @property
    def fleet(self) -> tuple[catalog.GpuInstance, ...]:
        """`types` as catalog entries."""
        return tuple(catalog.EC2_GPU_INSTANCES[t] for t in self.types)

    @property
    def gpu(self) -> catalog.GpuInstance:
        """The first choice. Its GPU count and architecture are every type's; memory is not (see `fleet`)."""
        return self.fleet[0]

    @property
    def label(self) -> str:
        """What runs, in a few words: "g5.xlarge", "g6.xlarge spot", "g6.xlarge|g5.xlarge spot above 1"."""
        purchase = ""
        if self.spot:
            purchase = f" spot above {self.on_demand_base} on-demand" if self.on_demand_base else " spot"
        return "|".join(self.types) + purchase

    @property
    def type_field(self) -> str:
        """Where the spec names the types, for findings about them."""
        return "instance_types" if self.instance_types else "instance_type"

    def type_fields(self) -> list[tuple[str, str]]:
        """(dotted field under compute, type) for each type the spec names."""
        if not self.instance_types:
            return [("instance_type", str(self.instance_type))]
        return [(f"instance_types[{i}]", t) for i, t in enumerate(self.instance_types)]


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
    requests_in_flight_per_task: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests the gateway is serving at once (streams until their last token), averaged "
        "over the tasks or instances (ecs-gpu, ec2, ecs-fargate).",
    )
    queue_depth_per_task: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests waiting in vLLM's queue (vllm:num_requests_waiting), averaged over the tasks "
        "or instances (ecs-gpu, ec2).",
    )
    kv_cache_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="vLLM's KV cache in use, percent, averaged over the tasks or instances (ecs-gpu, ec2).",
    )
    concurrent_requests_per_model: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests in each SageMaker model container at once, queued ones included "
        "(ConcurrentRequestsPerModel, a 10-second metric; sagemaker).",
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
                hint="add scaling.target, e.g. requests_per_target: 100 (GPU targets) or cpu_percent: 70",
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
    certificate_arn: AcmArn | None = Field(
        default=None, description="ACM certificate for HTTPS; it must cover `domain_name`."
    )
    domain_name: DomainName | None = Field(
        default=None,
        description="The name clients call over HTTPS (the certificate's name); the endpoint URL is "
        "https://<domain_name>. Required with certificate_arn.",
    )
    hosted_zone_id: HostedZoneId | None = Field(
        default=None,
        description="Route 53 hosted zone of `domain_name`: the stack creates its alias record there. "
        "Without it, point the name at the load balancer yourself (the LoadBalancerDnsName output).",
    )
    vpc_cidr: VpcCidr = Field(
        default=DEFAULT_VPC_CIDR,
        description="New VPC: its private range, /16 to /22; choose one that does not overlap the "
        "networks that will reach an internal endpoint (peering, Transit Gateway).",
    )
    nat_gateways: Literal[0, 1, 2] = Field(default=1, description="New VPC: 0, 1 or 2 (one per AZ).")
    vpc_endpoints: bool = Field(
        default=False,
        description="Interface endpoints for ECR, Logs and Secrets Manager (and what the target needs). "
        "A new VPC always has the S3 gateway endpoint.",
    )
    endpoint_private_dns: bool | None = Field(
        default=None,
        description="Existing VPC: create the interface endpoints with private DNS (true only when the "
        "VPC has no endpoints of its own for these services). A new VPC always has it.",
    )

    @model_validator(mode="after")
    def _subnets(self) -> Network:
        if self.hosted_zone_id and not self.domain_name:
            raise fail(
                "domain",
                "hosted_zone_id is for the record of domain_name, which is not set",
                hint="set domain_name, or remove hosted_zone_id",
                field="hosted_zone_id",
            )
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
        if self.vpc_cidr != DEFAULT_VPC_CIDR:
            raise fail(
                "vpc_cidr",
                "vpc_cidr applies to a VPC this stack creates; an existing VPC keeps its own range",
                hint="remove it, or set vpc: new",
                field="vpc_cidr",
            )
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


ClientName = _pattern(
    "client_name",
    r"[a-z][a-z0-9-]{1,31}",
    "2-32 characters: lowercase letters, digits and '-', starting with a letter",
)
# The deployment's own key (the one `deployctl smoke` and `rotate-keys` use) is a client of this name.
OPERATIONS_CLIENT = "deployctl"
# The gateway reads the client list from one SSM parameter: an advanced parameter holds 8 KB, about 25
# entries at the longest names and every limit set.
MAX_CLIENTS = 25


class Client(Section):
    name: ClientName = Field(
        description="Unique within the deployment; the Client dimension of its usage metrics."
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Requests a minute, per gateway task (none: no limit)."
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000_000,
        description="Prompt and completion tokens a minute, per gateway task (none: no limit).",
    )
    concurrent_requests: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests in flight at once, per gateway task (none: no limit).",
    )


class Auth(Section):
    api_keys: bool = Field(default=True, description="Clients need a Bearer key kept in Secrets Manager.")
    rotation_days: int = Field(default=30, ge=1, le=365, description="Days between key rotations.")
    clients: list[Client] = Field(
        default_factory=list,
        max_length=MAX_CLIENTS,
        description="Named clients, each with its own key (a secret deployctl/<env>/<name>/clients/<client>, "
        "rotated on the deployment's schedule) and optional limits. Adding or removing one is a stack "
        "update; a removed client's key stops working within a minute. Without clients, one key serves all.",
    )

    @model_validator(mode="after")
    def _clients(self) -> Auth:
        if self.clients and not self.api_keys:
            raise fail(
                "clients",
                "clients need API keys, and auth.api_keys is false",
                hint="set auth.api_keys: true, or remove auth.clients",
                field="clients",
            )
        seen: set[str] = set()
        for index, client in enumerate(self.clients):
            if client.name == OPERATIONS_CLIENT:
                raise fail(
                    "clients",
                    f"the client name '{OPERATIONS_CLIENT}' is the deployment's own key (smoke tests and "
                    "rotation checks use it)",
                    hint="choose another name",
                    field=f"clients.{index}.name",
                )
            if client.name in seen:
                raise fail(
                    "clients",
                    f"client '{client.name}' is listed twice",
                    hint="each client name once",
                    field=f"clients.{index}.name",
                )
            seen.add(client.name)
        return self


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
