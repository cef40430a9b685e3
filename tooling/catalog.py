"""Facts about AWS that the spec checks against: regions, GPU instance types, Fargate sizes, log retention.

Kept as data in one place so the validator, the JSON Schema, the stack builders and the price table all
agree on what exists. When AWS adds a GPU family, it is added here (and priced in the price table).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

# The partitions whose regions we deploy to. Read from botocore's bundled endpoint data (no network),
# so a new region arrives with a botocore upgrade instead of a hand edit.
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


@cache
def regions() -> dict[str, str]:
    """Every region name of the supported partitions, mapped to its partition."""
    from botocore.loaders import create_loader  # noqa: PLC0415 - only the first call pays for it

    data = create_loader().load_data("endpoints")
    return {
        region: partition["partition"]
        for partition in data["partitions"]
        if partition["partition"] in PARTITIONS
        for region in partition["regions"]
    }


@dataclass(frozen=True)
class GpuInstance:
    """One GPU instance type. `gpu_memory_gib` is per GPU."""

    name: str
    gpus: int
    gpu: str
    gpu_memory_gib: int
    vcpus: int
    memory_gib: int
    architecture: str = "x86_64"

    @property
    def family(self) -> str:
        return self.name.removeprefix("ml.").split(".")[0]

    @property
    def compute_capability(self) -> tuple[int, int]:
        return GPU_COMPUTE_CAPABILITY[self.gpu]

    @property
    def bfloat16(self) -> bool:
        """Whether the GPU computes in bfloat16 (compute capability 8.0 and above). vLLM serves a bf16
        checkpoint in bf16 only there; below, it refuses to start ("Bfloat16 is only supported on GPUs
        with compute capability of at least 8.0", vLLM's dtype check) or, in newer versions with
        `--dtype auto`, falls back to float16 (https://docs.vllm.ai/en/latest/configuration/engine_args.html)."""
        return self.compute_capability >= (8, 0)

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpus * self.gpu_memory_gib


def _family(
    family: str, gpu: str, gpu_mem: int, sizes: dict[str, tuple[int, int, int]], arch: str = "x86_64"
) -> list[GpuInstance]:
    return [
        GpuInstance(f"{family}.{size}", gpus, gpu, gpu_mem, vcpus, mem, arch)
        for size, (gpus, vcpus, mem) in sizes.items()
    ]


# CUDA compute capability of each GPU (https://developer.nvidia.com/cuda-gpus): which kernels and number
# formats vLLM can use on it, so whether two instance types serve one model the same way.
GPU_COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "NVIDIA T4": (7, 5),
    "NVIDIA T4G": (7, 5),
    "NVIDIA A10G": (8, 6),
    "NVIDIA L4": (8, 9),
    "NVIDIA L40S": (8, 9),
    "NVIDIA A100": (8, 0),
    "NVIDIA H100": (9, 0),
    "NVIDIA H200": (9, 0),
}

# size: (GPUs, vCPUs, memory GiB), from the EC2 instance type pages of each family.
_G_SIZES = {
    "xlarge": (1, 4, 16),
    "2xlarge": (1, 8, 32),
    "4xlarge": (1, 16, 64),
    "8xlarge": (1, 32, 128),
    "16xlarge": (1, 64, 256),
    "12xlarge": (4, 48, 192),
    "24xlarge": (4, 96, 384),
    "48xlarge": (8, 192, 768),
}

EC2_GPU_INSTANCES: dict[str, GpuInstance] = {
    i.name: i
    for i in [
        *_family(
            "g4dn",
            "NVIDIA T4",
            16,
            {
                "xlarge": (1, 4, 16),
                "2xlarge": (1, 8, 32),
                "4xlarge": (1, 16, 64),
                "8xlarge": (1, 32, 128),
                "16xlarge": (1, 64, 256),
                "12xlarge": (4, 48, 192),
                "metal": (8, 96, 384),
            },
        ),
        *_family("g5", "NVIDIA A10G", 24, _G_SIZES),
        *_family(
            "g5g",
            "NVIDIA T4G",
            16,
            {
                "xlarge": (1, 4, 8),
                "2xlarge": (1, 8, 16),
                "4xlarge": (1, 16, 32),
                "8xlarge": (1, 32, 64),
                "16xlarge": (2, 64, 128),
                "metal": (2, 64, 128),
            },
            arch="arm64",
        ),
        *_family("g6", "NVIDIA L4", 24, _G_SIZES),
        *_family(
            "g6e",
            "NVIDIA L40S",
            48,
            {
                "xlarge": (1, 4, 32),
                "2xlarge": (1, 8, 64),
                "4xlarge": (1, 16, 128),
                "8xlarge": (1, 32, 256),
                "16xlarge": (1, 64, 512),
                "12xlarge": (4, 48, 384),
                "24xlarge": (4, 96, 768),
                "48xlarge": (8, 192, 1536),
            },
        ),
        *_family("p4d", "NVIDIA A100", 40, {"24xlarge": (8, 96, 1152)}),
        *_family("p4de", "NVIDIA A100", 80, {"24xlarge": (8, 96, 1152)}),
        *_family("p5", "NVIDIA H100", 80, {"48xlarge": (8, 192, 2048)}),
        *_family("p5e", "NVIDIA H200", 141, {"48xlarge": (8, 192, 2048)}),
        *_family("p5en", "NVIDIA H200", 141, {"48xlarge": (8, 192, 2048)}),
    ]
}

# SageMaker hosts the x86_64 GPU families under an `ml.` prefix; g5g, p5e and p5en are not offered there.
_SAGEMAKER_FAMILIES = {"g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5"}
SAGEMAKER_GPU_INSTANCES: dict[str, GpuInstance] = {
    f"ml.{i.name}": GpuInstance(
        f"ml.{i.name}", i.gpus, i.gpu, i.gpu_memory_gib, i.vcpus, i.memory_gib, i.architecture
    )
    for i in EC2_GPU_INSTANCES.values()
    if i.family in _SAGEMAKER_FAMILIES and not i.name.endswith(".metal")
}

# Every EC2 GPU family here is also sold as Spot.
SPOT_FAMILIES = frozenset(i.family for i in EC2_GPU_INSTANCES.values())


def fargate_memory_choices(cpu: int) -> list[int]:
    """The memory sizes (MiB) Fargate accepts with `cpu` units, per the ECS task-size table."""
    gib = 1024
    table = {
        256: [512, 1 * gib, 2 * gib],
        512: [g * gib for g in range(1, 5)],
        1024: [g * gib for g in range(2, 9)],
        2048: [g * gib for g in range(4, 17)],
        4096: [g * gib for g in range(8, 31)],
        8192: [g * gib for g in range(16, 61, 4)],
        16384: [g * gib for g in range(32, 121, 8)],
    }
    return table.get(cpu, [])


FARGATE_CPU_UNITS = (256, 512, 1024, 2048, 4096, 8192, 16384)

# CloudWatch Logs' PutRetentionPolicy accepts exactly these day counts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# The Elastic Load Balancing account that writes ALB access logs, for regions opened before August
# 2022 (AWS's "Enable access logs" guide; the same table as the CDK's region-info). Newer regions use
# the service principal logdelivery.elasticloadbalancing.amazonaws.com instead.
ELB_LOG_ACCOUNTS = {
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-south-1": "718504428378",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-southeast-3": "589379963580",
    "ca-central-1": "985666609251",
    "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340",
    "eu-central-1": "054676820928",
    "eu-north-1": "897822967062",
    "eu-south-1": "635631232127",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-gov-east-1": "190560391635",
    "us-gov-west-1": "048591011584",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
}


@cache
def offered_instance_types(region: str, *, sagemaker: bool) -> frozenset[str] | None:
    """The instance types AWS offers in `region` (EC2, or SageMaker hosting), None when unknown.

    cfn-lint ships these lists from AWS's pricing data and checks templates against them, so the spec
    uses the same lists: an instance that would fail lint is refused at validation, pointing at the YAML.
    """
    import json  # noqa: PLC0415
    from importlib import resources  # noqa: PLC0415

    folder = "aws_sagemaker_hosting" if sagemaker else "aws_ec2_instance"
    data = resources.files("cfnlint.data.schemas.extensions").joinpath(folder, "instancetype_enum.json")
    table = json.loads(data.read_text(encoding="utf-8"))
    entry = table.get(region)
    return frozenset(entry["enum"]) if entry else None


def interchangeable(first: GpuInstance, other: GpuInstance) -> str | None:
    """Why `other` cannot stand in for `first` in one group of instances, or None when it can.

    Every instance of a group runs the same task or container: all of its GPUs go to one vLLM server
    (tensor_parallel_size is the GPU count), so the count must agree; one AMI and one image serve the
    group, so the CPU architecture must agree; and a bf16 checkpoint is served as bfloat16 on one and as
    float16 on the other when only one of them has bfloat16, so answers would differ by instance.
    """
    if other.gpus != first.gpus:
        return f"{other.name} has {other.gpus} GPU(s), {first.name} {first.gpus}"
    if other.architecture != first.architecture:
        return f"{other.name} is {other.architecture}, {first.name} {first.architecture}"
    if other.bfloat16 != first.bfloat16:
        with_bf16, without = (first, other) if first.bfloat16 else (other, first)
        major, minor = without.compute_capability
        return (
            f"{without.name}'s {without.gpu} (compute capability {major}.{minor}) has no bfloat16 and "
            f"{with_bf16.name}'s {with_bf16.gpu} has: vLLM would serve a bf16 model in bfloat16 on one "
            "and in float16, or not at all, on the other"
        )
    return None


def stand_ins(first: GpuInstance) -> list[str]:
    """The EC2 GPU types that may follow `first` in a list of fallback types."""
    return [
        name
        for name, other in EC2_GPU_INSTANCES.items()
        if name != first.name and interchangeable(first, other) is None
    ]
