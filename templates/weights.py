"""Read access to model weights kept in S3 (`model.id: s3://bucket/prefix/`), and nothing more."""

from __future__ import annotations

from typing import Any

from troposphere import Sub

from templates.iam import statement
from tooling.spec import Deployment


def weight_readers(spec: Deployment) -> list[dict[str, Any]]:
    if not spec.model.id.startswith("s3://"):
        return []
    bucket, _, prefix = spec.model.id.removeprefix("s3://").partition("/")
    bucket_arn = Sub(f"arn:${{AWS::Partition}}:s3:::{bucket}")
    return [
        statement(["s3:GetObject"], Sub(f"arn:${{AWS::Partition}}:s3:::{bucket}/{prefix}*")),
        statement(["s3:ListBucket"], bucket_arn, Condition={"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
    ]
