"""CloudWatch log groups: every one named under the deployment, kept as the spec says, encrypted."""

from __future__ import annotations

from typing import Any

from troposphere import logs

from templates.context import Stack


def add_log_group(stack: Stack, key_arn: Any, logical: str = "LogGroup", suffix: str = "") -> logs.LogGroup:
    """`/deployctl/<environment>/<name>[/<suffix>]`; kept after a prod stack is deleted, like its key."""
    return stack.add(
        logs.LogGroup(
            logical,
            LogGroupName=f"/deployctl/{stack.environment}/{stack.spec.name}"
            + (f"/{suffix}" if suffix else ""),
            RetentionInDays=stack.spec.observability.log_retention_days,
            KmsKeyId=key_arn,
            DeletionPolicy=stack.keep_on_delete,
            UpdateReplacePolicy=stack.keep_on_delete,
        )
    )
