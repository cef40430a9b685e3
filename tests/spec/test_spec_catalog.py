from __future__ import annotations

from tooling import catalog


def test_regions_come_from_botocore() -> None:
    regions = catalog.regions()
    assert regions["us-east-1"] == "aws"
    assert regions["cn-north-1"] == "aws-cn"
    assert regions["us-gov-west-1"] == "aws-us-gov"
    assert "us-east-9" not in regions


def test_gpu_tables_hold_the_families_the_spec_promises() -> None:
    families = {i.family for i in catalog.EC2_GPU_INSTANCES.values()}
    assert {"g4dn", "g5", "g5g", "g6", "g6e", "p4d", "p5"} <= families
    g5 = catalog.EC2_GPU_INSTANCES["g5.xlarge"]
    assert (g5.gpus, g5.gpu_memory_gib, g5.vcpus, g5.memory_gib) == (1, 24, 4, 16)
    assert catalog.EC2_GPU_INSTANCES["g5g.xlarge"].architecture == "arm64"
    assert catalog.EC2_GPU_INSTANCES["p5.48xlarge"].gpus == 8


def test_sagemaker_types_mirror_ec2_types() -> None:
    for name, instance in catalog.SAGEMAKER_GPU_INSTANCES.items():
        ec2 = catalog.EC2_GPU_INSTANCES[name.removeprefix("ml.")]
        assert (instance.gpus, instance.gpu_memory_gib) == (ec2.gpus, ec2.gpu_memory_gib)
        assert instance.architecture == "x86_64"
    assert "ml.g5.xlarge" in catalog.SAGEMAKER_GPU_INSTANCES
    assert "ml.g5g.xlarge" not in catalog.SAGEMAKER_GPU_INSTANCES


def test_fargate_pairs_match_the_ecs_table() -> None:
    assert catalog.fargate_memory_choices(256) == [512, 1024, 2048]
    assert catalog.fargate_memory_choices(8192)[0] == 16384
    assert catalog.fargate_memory_choices(8192)[-1] == 61440
    assert 16384 in catalog.fargate_memory_choices(8192)
    assert 20480 in catalog.fargate_memory_choices(8192)
    assert 18432 not in catalog.fargate_memory_choices(8192)  # 4 GiB steps at 8 vCPU
    assert catalog.fargate_memory_choices(16384)[-1] == 122880
    assert catalog.fargate_memory_choices(3) == []


def test_interchangeable_types_share_gpus_architecture_and_bfloat16() -> None:
    gpus = catalog.EC2_GPU_INSTANCES
    assert catalog.interchangeable(gpus["g6.xlarge"], gpus["g5.xlarge"]) is None
    assert catalog.interchangeable(gpus["g5.12xlarge"], gpus["g6e.12xlarge"]) is None
    assert catalog.interchangeable(gpus["p4d.24xlarge"], gpus["p5.48xlarge"]) is None  # A100 and H100
    assert "4 GPU(s)" in (catalog.interchangeable(gpus["g5.xlarge"], gpus["g5.12xlarge"]) or "")
    assert "arm64" in (catalog.interchangeable(gpus["g4dn.xlarge"], gpus["g5g.xlarge"]) or "")
    bf16 = catalog.interchangeable(gpus["g4dn.xlarge"], gpus["g6.xlarge"]) or ""
    assert "NVIDIA T4 (compute capability 7.5) has no bfloat16" in bf16
    assert catalog.interchangeable(gpus["g4dn.xlarge"], gpus["g4dn.2xlarge"]) is None


def test_every_gpu_has_a_compute_capability() -> None:
    for instance in [*catalog.EC2_GPU_INSTANCES.values(), *catalog.SAGEMAKER_GPU_INSTANCES.values()]:
        assert instance.compute_capability >= (7, 5), instance.name
    stand_ins = catalog.stand_ins(catalog.EC2_GPU_INSTANCES["g5.xlarge"])
    assert "g6.xlarge" in stand_ins and "g5.xlarge" not in stand_ins
    assert not {"g4dn.xlarge", "g5.12xlarge", "g5g.xlarge"} & set(stand_ins)
