"""CloudFormation as deployctl drives it: stack states, change sets, events, template delivery.

The state handling follows what AWS documents: a stack that failed its creation (ROLLBACK_COMPLETE,
CREATE_FAILED, ROLLBACK_FAILED) or an empty shell left by a CREATE change set (REVIEW_IN_PROGRESS) can
only be deleted and created again; UPDATE_ROLLBACK_FAILED needs ContinueUpdateRollback; anything
*_IN_PROGRESS is waited for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from templates.stack import INLINE_LIMIT, inline_size
from tooling import aws

HASH_TAG = "deployctl:template-hash"
RECREATE = {"ROLLBACK_COMPLETE", "CREATE_FAILED", "ROLLBACK_FAILED", "REVIEW_IN_PROGRESS", "DELETE_FAILED"}
SUCCESS = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 2.0


class Cancelled(Exception):
    """Ctrl-C: stop waiting, clean up what was not yet executed."""


@dataclass
class Events:
    """Stack events seen so far, so each is reported once while a stack is waited on."""

    seen: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def tags_of(stack: dict[str, Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in (stack or {}).get("Tags", [])}


def outputs_of(stack: dict[str, Any] | None) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs", [])}


def template_hash(text: str, parameters: dict[str, str]) -> str:
    """What the fast path compares: the template as sent and its parameter values."""
    compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    return hashlib.sha256((compact + json.dumps(parameters, sort_keys=True)).encode()).hexdigest()[:32]


def execution_role(cfn: Any) -> str | None:
    """The role CloudFormation acts with, from the bootstrap stack of this region (None before bootstrap)."""
    from templates.bootstrap import STACK_NAME  # noqa: PLC0415

    return outputs_of(describe(cfn, STACK_NAME)).get("ExecutionRoleArn")


def artifacts_bucket(account: str, region: str) -> str:
    """The bucket the bootstrap stack makes for templates over the inline limit."""
    return f"deployctl-artifacts-{account}-{region}"


def template_argument(text: str, stack_name: str, region: str) -> dict[str, str]:
    """TemplateBody when it fits inline, else an upload to the artifacts bucket and its TemplateURL."""
    compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    if inline_size(text) <= INLINE_LIMIT:
        return {"TemplateBody": compact}
    bucket = artifacts_bucket(aws.account_id(region), region)
    key = f"templates/{stack_name}/{hashlib.sha256(compact.encode()).hexdigest()}.json"
    aws.client("s3", region).put_object(
        Bucket=bucket, Key=key, Body=compact.encode(), ContentType="application/json"
    )
    return {"TemplateURL": f"https://{bucket}.s3.{region}.amazonaws.com/{key}"}


def wait(
    cfn: Any,
    name: str,
    *,
    timeout: float,
    events: Events | None = None,
    on_event: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any] | None:
    """Wait until the stack is in no *_IN_PROGRESS state; report new events on the way."""
    deadline = time.monotonic() + timeout
    while True:
        stack = describe(cfn, name)
        if events is not None:
            for line in new_events(cfn, name, events):
                if on_event:
                    on_event(line)
        if stack is None or not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            return stack
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still {stack['StackStatus']} after {timeout:.0f}s")
        if cancel is not None and cancel.wait(POLL_SECONDS):
            raise Cancelled
        if cancel is None:
            time.sleep(POLL_SECONDS)


def new_events(cfn: Any, name: str, events: Events) -> Iterator[str]:
    """Events not reported yet, oldest first; failures are also kept for the final summary."""
    try:
        pages = cfn.get_paginator("describe_stack_events").paginate(StackName=name)
        fresh = []
        for page in pages:
            batch = [e for e in page["StackEvents"] if e["EventId"] not in events.seen]
            fresh += batch
            if len(batch) < len(page["StackEvents"]):
                break  # events come newest first: the rest were seen before
    except ClientError:
        return
    for event in reversed(fresh):
        events.seen.add(event["EventId"])
        status, reason = event["ResourceStatus"], event.get("ResourceStatusReason", "")
        line = f"{event['LogicalResourceId']} ({event['ResourceType']}) {status}" + (
            f": {reason}" if reason else ""
        )
        if status.endswith("_FAILED") and reason and "cancelled" not in reason.lower():
            events.failures.append(line)
        yield line


def create_change_set(
    cfn: Any,
    name: str,
    change_set: str,
    *,
    kind: str,
    template: dict[str, str],
    parameters: list[dict[str, Any]],
    tags: dict[str, str],
    role_arn: str | None = None,
) -> str:
    response = cfn.create_change_set(
        StackName=name,
        ChangeSetName=change_set,
        ChangeSetType=kind,
        Parameters=parameters,
        Capabilities=CAPABILITIES,
        Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        **({"RoleARN": role_arn} if role_arn else {}),
        **template,
    )
    return response["Id"]


def wait_change_set(
    cfn: Any, name: str, change_set: str, cancel: threading.Event | None = None
) -> dict[str, Any]:
    while True:
        described = cfn.describe_change_set(
            StackName=name, ChangeSetName=change_set, IncludePropertyValues=True
        )
        if described["Status"] in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE", "DELETE_FAILED"):
            changes = list(described.get("Changes", []))
            token = described.get("NextToken")
            while token:
                page = cfn.describe_change_set(
                    StackName=name, ChangeSetName=change_set, IncludePropertyValues=True, NextToken=token
                )
                changes += page.get("Changes", [])
                token = page.get("NextToken")
            return {**described, "Changes": changes}
        if cancel is not None and cancel.wait(POLL_SECONDS / 2):
            raise Cancelled
        if cancel is None:
            time.sleep(POLL_SECONDS / 2)


NO_UPDATES = "No updates are to be performed"


def is_empty(described: dict[str, Any]) -> bool:
    """AWS's way of saying "no changes": a FAILED change set with this reason."""
    reason = described.get("StatusReason", "") or ""
    return described["Status"] == "FAILED" and (
        "didn't contain changes" in reason or "No updates are to be performed" in reason
    )


def delete_change_set(cfn: Any, name: str, change_set: str) -> None:
    with contextlib.suppress(ClientError):  # already gone, or the stack went with it
        cfn.delete_change_set(StackName=name, ChangeSetName=change_set)


def delete_shell(cfn: Any, name: str) -> None:
    """Delete the empty REVIEW_IN_PROGRESS stack a CREATE change set leaves when it is not executed."""
    stack = describe(cfn, name)
    if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        cfn.delete_stack(StackName=name)


def delete_stack(cfn: Any, name: str, *, timeout: float, cancel: threading.Event | None = None) -> None:
    cfn.update_termination_protection(StackName=name, EnableTerminationProtection=False)
    cfn.delete_stack(StackName=name)
    deadline = time.monotonic() + timeout
    while (stack := describe(cfn, name)) is not None and stack["StackStatus"] != "DELETE_COMPLETE":
        if stack["StackStatus"] == "DELETE_FAILED":
            raise RuntimeError(f"{name}: DELETE_FAILED: {stack.get('StackStatusReason', '')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still deleting after {timeout:.0f}s")
        if cancel is not None and cancel.wait(POLL_SECONDS):
            raise Cancelled
        if cancel is None:
            time.sleep(POLL_SECONDS)
