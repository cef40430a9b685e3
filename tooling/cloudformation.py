"""CloudFormation as deployctl drives it: stack states, change sets, events, template delivery.

The state handling follows what AWS documents: a stack that failed its creation (ROLLBACK_COMPLETE,
CREATE_FAILED, ROLLBACK_FAILED) or an empty shell left by a CREATE change set (REVIEW_IN_PROGRESS) can
only be deleted and created again; UPDATE_ROLLBACK_FAILED needs ContinueUpdateRollback; anything
*_IN_PROGRESS is waited for.
"""

from __future__ import annotations

import contextlib
import functools
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
    """Stack events seen so far, so each is reported once while a stack is waited on.

    `since` is the newest event that existed before this deploy acted (see `mark`): DescribeStackEvents
    returns a stack's whole history newest first, and what happened before this deploy is neither
    streamed nor reported as today's failure.
    """

    seen: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    since: str | None = None


def mark(cfn: Any, name: str, events: Events) -> None:
    """Remember the newest event now, before executing a change set: only later events are ours.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStackEvents.html"""
    try:
        page = cfn.describe_stack_events(StackName=name)
    except ClientError:
        return  # no stack yet: every event will be this deploy's
    if page.get("StackEvents"):
        events.since = page["StackEvents"][0]["EventId"]


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


def template_hash(text: str, parameters: dict[str, str], tags: dict[str, str] | None = None) -> str:
    """What the fast path compares: the template as sent, its parameter values and ownership tags
    (a stack deployed before it carried them is updated once to get them)."""
    compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    extra = json.dumps(tags, sort_keys=True) if tags else ""
    return hashlib.sha256((compact + json.dumps(parameters, sort_keys=True) + extra).encode()).hexdigest()[
        :32
    ]


def describe_error(exc: BaseException) -> str:
    """One line for an AWS call that failed: the error code and message, or the transport fault."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = " ".join(str(error.get("Message", "")).split())[:300]
        return f"{code}: {message}" if message else f"{code or 'ClientError'} (no message)"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def clean_up(cfn: Any, name: str, change_set: str, *, shell: bool) -> list[str]:
    """Delete a plan's change set and the REVIEW_IN_PROGRESS shell it made; what could not be
    removed is returned, never swallowed."""
    left = []
    if change_set:
        try:
            cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
        except ClientError as exc:
            if "does not exist" not in str(exc):
                left.append(
                    f"change set {change_set} left behind ({describe_error(exc)}); delete it: aws "
                    f"cloudformation delete-change-set --stack-name {name} --change-set-name {change_set}"
                )
        except Exception as exc:
            left.append(f"change set {change_set} left behind ({describe_error(exc)})")
    if shell:
        try:
            delete_shell(cfn, name)
        except Exception as exc:
            left.append(f"review shell {name} left behind ({describe_error(exc)}); delete it: "
                        f"aws cloudformation delete-stack --stack-name {name}")  # fmt: skip
    return left


def failed_resources(cfn: Any, name: str) -> list[str]:
    """The resources whose deletion failed, with CloudFormation's reason (ListStackResources)."""
    found = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        for r in page["StackResourceSummaries"]:
            if r["ResourceStatus"] == "DELETE_FAILED":
                reason = r.get("ResourceStatusReason", "")
                found.append((r["LogicalResourceId"], f"{r['LogicalResourceId']} ({r['ResourceType']})"
                              + (f": {reason}" if reason else "")))  # fmt: skip
    return [line for _, line in found]


def delete_failed_report(cfn: Any, name: str, stack: dict[str, Any]) -> str:
    """What blocked a DELETE_FAILED stack, and the two ways out (DeleteStack's RetainResources applies
    to DELETE_FAILED stacks only:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DeleteStack.html)."""
    try:
        blocked = failed_resources(cfn, name)
    except Exception as exc:
        blocked = [f"(could not list its resources: {describe_error(exc)})"]
    logical = [b.split(" ", 1)[0] for b in blocked if not b.startswith("(")]
    return (
        f"DELETE_FAILED: {stack.get('StackStatusReason', '')} Blocked by: {'; '.join(blocked) or 'unknown'}. "
        "Remove what blocks them (e.g. empty the bucket) and deploy again, or keep them and delete "
        "the stack: "
        f"aws cloudformation delete-stack --stack-name {name}"
        + (f" --retain-resources {' '.join(logical)}" if logical else "")
    )


def delete_error(cfn: Any, name: str, exc: BaseException) -> str:
    """Why deleting the stack failed: for a DELETE_FAILED stack what blocked it and the ways out
    (delete_failed_report), else the error itself."""
    with contextlib.suppress(Exception):  # the error alone still says something
        if (stack := describe(cfn, name)) is not None and stack["StackStatus"] == "DELETE_FAILED":
            return delete_failed_report(cfn, name, stack)
    return describe_error(exc)


def recreate_reason(cfn: Any, name: str, stack: dict[str, Any]) -> str:
    """Why a stack must be created again: its state and its first failure (newest events first)."""
    reason = ""
    try:
        for event in cfn.describe_stack_events(StackName=name).get("StackEvents", []):
            if event["ResourceStatus"].endswith("_FAILED") and event.get("ResourceStatusReason"):
                reason = f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}"  # keeps the oldest
    except Exception:  # the state alone still says why
        reason = ""
    return f"previous create failed ({stack['StackStatus']}" + (f"; {reason}" if reason else "") + ")"


def execution_role(cfn: Any) -> str | None:
    """The role CloudFormation acts with, from the bootstrap stack of this region (None before bootstrap)."""
    from templates.bootstrap import STACK_NAME  # noqa: PLC0415

    return outputs_of(describe(cfn, STACK_NAME)).get("ExecutionRoleArn")


def artifacts_bucket(account: str, region: str) -> str:
    """The bucket the bootstrap stack makes for templates over the inline limit."""
    return f"deployctl-artifacts-{account}-{region}"


# Where each caller uploads: plans run pull requests' code, so they never share a key with a deploy
# (the bucket denies `templates/deploy/*` writes to all but the deploy roles: templates/bootstrap.py).
TEMPLATE_PREFIXES = {
    "plan": "templates/plan",
    "deploy": "templates/deploy",
    "bootstrap": "templates/bootstrap",
}


@functools.cache
def dns_suffix(region: str) -> str:
    """The domain of the region's partition: S3 in the China regions answers under amazonaws.com.cn,
    never amazonaws.com (https://docs.amazonaws.cn/en_us/general/latest/gr/endpoints-Beijing.html).
    botocore's endpoint data says which partition holds a region and what its domain is."""
    from botocore.loaders import create_loader  # noqa: PLC0415

    for partition in create_loader().load_data("endpoints")["partitions"]:
        if region in partition["regions"]:
            return str(partition["dnsSuffix"])
    return "amazonaws.com"


def template_url(bucket: str, key: str, region: str) -> str:
    """The object's regional virtual-hosted URL, the form CreateChangeSet takes for a TemplateURL (an
    https:// URL of an object in S3, the bucket in the stack's region):
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html"""
    return f"https://{bucket}.s3.{region}.{dns_suffix(region)}/{key}"


def template_argument(text: str, stack_name: str, region: str, *, purpose: str) -> dict[str, str]:
    """TemplateBody when it fits inline, else an upload to the artifacts bucket under `purpose`'s
    prefix (TEMPLATE_PREFIXES) and its TemplateURL. The object is uploaded every time, so a template a
    rollback takes back from a release record never depends on an object the bucket's lifecycle rule
    may have expired since."""
    prefix = TEMPLATE_PREFIXES[purpose]
    compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    if inline_size(text) <= INLINE_LIMIT:
        return {"TemplateBody": compact}
    bucket = artifacts_bucket(aws.account_id(region), region)
    key = f"{prefix}/{stack_name}/{hashlib.sha256(compact.encode()).hexdigest()}.json"
    aws.client("s3", region).put_object(
        Bucket=bucket, Key=key, Body=compact.encode(), ContentType="application/json"
    )
    return {"TemplateURL": template_url(bucket, key, region)}


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
            batch = []
            for event in page["StackEvents"]:
                if event["EventId"] == events.since or event["EventId"] in events.seen:
                    break  # events come newest first: the rest were seen, or are from before us
                batch.append(event)
            fresh += batch
            if len(batch) < len(page["StackEvents"]):
                break
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


@dataclass
class Applied:
    """What became of a change set: "no-change" (empty), "change-set-failed" (`reason`), "not-started"
    (ExecuteChangeSet refused: `error`), or "executed" with the stack as it ended (`final`)."""

    outcome: str
    described: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    reason: str = ""
    error: ClientError | None = None


def apply_change_set(
    cfn: Any,
    name: str,
    change_set: str,
    *,
    kind: str,
    template: dict[str, str],
    parameters: list[dict[str, Any]],
    tags: dict[str, str],
    events: Events,
    timeout: float,
    on_event: Callable[[str], None],
    role_arn: str | None = None,
    cancel: threading.Event | None = None,
) -> Applied:
    """Create a change set, wait for it, execute it and wait for the stack, its events only from now on.

    A change set that is not executed (empty, failed, refused, interrupted) is deleted, and with it the
    empty shell a CREATE change set leaves; one that executes is left to CloudFormation.
    """
    try:
        create_change_set(
            cfn, name, change_set, kind=kind, template=template, parameters=parameters, tags=tags,
            role_arn=role_arn,
        )  # fmt: skip
    except ClientError as exc:
        if NO_UPDATES in str(exc):  # some endpoints refuse an empty change set outright
            return Applied("no-change")
        raise
    executing = False
    try:
        described = wait_change_set(cfn, name, change_set, cancel)
        if is_empty(described):
            return Applied("no-change", described)
        if described["Status"] == "FAILED":
            return Applied("change-set-failed", described, reason=described.get("StatusReason", ""))
        if cancel is not None and cancel.is_set():
            raise Cancelled
        mark(cfn, name, events)
        try:
            cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
        except ClientError as exc:
            return Applied("not-started", described, error=exc)
        executing = True
        final = wait(cfn, name, timeout=timeout, events=events, on_event=on_event, cancel=cancel)
        return Applied("executed", described, final)
    finally:
        if not executing:
            delete_change_set(cfn, name, change_set)
            if kind == "CREATE":
                delete_shell(cfn, name)


def delete_change_set(cfn: Any, name: str, change_set: str) -> None:
    with contextlib.suppress(ClientError):  # already gone, or the stack went with it
        cfn.delete_change_set(StackName=name, ChangeSetName=change_set)


def delete_shell(cfn: Any, name: str) -> None:
    """Delete the empty REVIEW_IN_PROGRESS stack a CREATE change set leaves when it is not executed."""
    stack = describe(cfn, name)
    if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        cfn.delete_stack(StackName=name)


def delete_stack(
    cfn: Any,
    name: str,
    *,
    timeout: float,
    cancel: threading.Event | None = None,
    lift_protection: bool = True,
) -> None:
    """Delete and wait. Termination protection is lifted only when the caller was allowed to (prod
    with --yes), after every check that the stack may go:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html"""
    if lift_protection:
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
