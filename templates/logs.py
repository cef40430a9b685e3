"""CloudWatch log groups: every one named under the deployment, kept as the spec says, encrypted."""

from __future__ import annotations

from typing import Any

from troposphere import Join, Ref, Select, Split, logs

from templates.context import Stack


def stack_instance_id() -> Select:
    """The UUID at the end of this stack's id: a new one each time the stack is created again."""
    return Select(2, Split("/", Ref("AWS::StackId")))


def add_log_group(stack: Stack, key_arn: Any, logical: str = "LogGroup", suffix: str = "") -> logs.LogGroup:
    """`/deployctl/<environment>/<name>/<stack uuid>[/<suffix>]`; kept after a prod stack is deleted.

    A log group name is unique in the account and region, and a prod group outlives its stack; the
    stack's UUID in the name lets the deployment be created again (after a delete, or a prune and a
    re-add) without "already exists". A failed create removes its groups (RetainExceptOnCreate).
    """
    return stack.add(
        logs.LogGroup(
            logical,
            LogGroupName=Join(
                "",
                [
                    f"/deployctl/{stack.environment}/{stack.spec.name}/",
                    stack_instance_id(),
                    *([f"/{suffix}"] if suffix else []),
                ],
            ),
            RetentionInDays=stack.spec.observability.log_retention_days,
            KmsKeyId=key_arn,
            DeletionPolicy=stack.keep_on_delete,
            UpdateReplacePolicy=stack.keep_on_replace,
        )
    )
