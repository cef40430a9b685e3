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
