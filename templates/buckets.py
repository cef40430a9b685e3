"""What every S3 bucket of ours has: no public access, owner-enforced objects, TLS-only access."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Sub, s3


def private(algorithm: str) -> dict[str, Any]:
    """Bucket properties: encryption with `algorithm` (AES256 or aws:kms), public access blocked."""
    return {
        "BucketEncryption": s3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                s3.ServerSideEncryptionRule(
                    ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm=algorithm),
                    **({"BucketKeyEnabled": True} if algorithm == "aws:kms" else {}),
                )
            ]
        ),
        "PublicAccessBlockConfiguration": s3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
        ),
        "OwnershipControls": s3.OwnershipControls(
            Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
        ),
    }


def tls_only(bucket: s3.Bucket) -> dict[str, Any]:
    """The bucket-policy statement that refuses any request not made over TLS."""
    arn = GetAtt(bucket, "Arn")
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, Sub("${Arn}/*", Arn=arn)],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
