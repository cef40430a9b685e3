"""Deploying stacks: a change set each, executed while its events stream, in parallel across stacks.

One stack's failure stops nothing else. An unchanged stack costs one DescribeStacks: the hash of its
template and parameters is kept as a stack tag. Ctrl-C deletes change sets not yet executed; a change
set already executing is left to CloudFormation (it finishes or rolls back on its own).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from tooling import aws, certificates
from tooling import cloudformation as cf
from tooling.accounts import guard
from tooling.accounts.environments import Environments
from tooling.changesets import managed_stacks, parameter_values, parameters, stack_tags
from tooling.snapshot import StackState

Outcome = str  # created | updated | unchanged | no-change | deleted | failed | skipped | interrupted


@dataclass
class Result:
    stack_name: str
    outcome: Outcome
    seconds: float = 0.0
    endpoint: str = ""
    reasons: list[str] = field(default_factory=list)


@dataclass
class Options:
    image_tags: dict[str, str] = field(default_factory=dict)  # parameter name -> tag, for every stack
    # stack name -> {parameter name -> tag}: e.g. what ran before, for a rollback (`status --format json`)
    stack_image_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    timeout: float = 3600.0
    max_parallel: int = 4
    on_event: Callable[[str, str], None] = lambda stack, line: None
    # deployments/environments.yaml (None: no such file; the credentials' account is used as it is)
    environments: Environments | None = None
    # Seconds to wait for a new image to replicate into a stack's region before failing it.
    image_wait: float = 0.0


def deploy_all(states: list[StackState], options: Options, cancel: threading.Event) -> list[Result]:
    pool = ThreadPoolExecutor(max_workers=max(1, options.max_parallel))
    try:
        return list(pool.map(lambda s: _guarded(s, options, cancel), states))
    except KeyboardInterrupt:
        # Tell the workers before waiting for them: each deletes its change set if not yet executed.
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)


def _guarded(state: StackState, options: Options, cancel: threading.Event) -> Result:
    started = time.monotonic()
    try:
        result = deploy_stack(state, options, cancel)
    except cf.Cancelled:
        result = Result(state.stack_name, "interrupted")
    except Exception as exc:
        result = Result(state.stack_name, "failed", reasons=[f"{type(exc).__name__}: {exc}"])
    result.seconds = time.monotonic() - started
    return result


def deploy_stack(state: StackState, options: Options, cancel: threading.Event) -> Result:
    name = state.stack_name
    if not state.valid or state.text is None:
        return Result(name, "skipped", reasons=state.errors or ["invalid"])

    def report(line: str) -> None:
        options.on_event(name, line)

    # The account, the region and the images, before anything changes (a stack recreated included).
    given = {**options.image_tags, **options.stack_image_tags.get(name, {})}
    if problems := guard.before_change(
        name, state.environment, state.region, state.text, given, options.environments,
        image_wait=options.image_wait, on_wait=report,
    ):  # fmt: skip
        return Result(name, "failed", reasons=problems)
    # Still before anything changes: a certificate that is not for the endpoint's name.
    verdict = certificates.check(state.text, state.region)
    for warning in verdict.warnings:
        report(f"warning: {warning}")
    if verdict.errors:
        return Result(name, "failed", reasons=verdict.errors)
    cfn = aws.client("cloudformation", state.region)

    events = cf.Events()
    stack = cf.describe(cfn, name)
    if (
        stack is not None
        and stack["StackStatus"].endswith("_IN_PROGRESS")
        and stack["StackStatus"] != "REVIEW_IN_PROGRESS"
    ):
        report(f"waiting: {stack['StackStatus']}")
        stack = cf.wait(cfn, name, timeout=options.timeout, cancel=cancel)
    if stack is not None and stack["StackStatus"] == "UPDATE_ROLLBACK_FAILED":
        report("UPDATE_ROLLBACK_FAILED: continuing the rollback")
        cfn.continue_update_rollback(StackName=name)
        stack = cf.wait(cfn, name, timeout=options.timeout, events=events, on_event=report, cancel=cancel)
        return Result(
            name,
            "failed",
            reasons=[
                "the stack was UPDATE_ROLLBACK_FAILED; ContinueUpdateRollback brought it to "
                f"{(stack or {}).get('StackStatus', 'unknown')}; fix the cause and deploy again",
                *events.failures,
            ],
        )
    if stack is not None and stack["StackStatus"] in cf.RECREATE:
        report(f"{stack['StackStatus']}: deleting it to create it again")
        cf.delete_stack(cfn, name, timeout=options.timeout, cancel=cancel)
        stack = None

    params = parameters(state, stack, {**options.image_tags, **options.stack_image_tags.get(name, {})})
    digest = cf.template_hash(state.text, parameter_values(state, params, stack))
    if stack is not None and cf.tags_of(stack).get(cf.HASH_TAG) == digest:
        return Result(name, "unchanged", endpoint=cf.outputs_of(stack).get("EndpointUrl", ""))

    change_set = f"deployctl-{uuid.uuid4().hex[:12]}"
    kind = "CREATE" if stack is None else "UPDATE"
    try:
        cf.create_change_set(
            cfn,
            name,
            change_set,
            kind=kind,
            template=cf.template_argument(state.text, name, state.region),
            parameters=params,
            tags=stack_tags(state, digest),
            role_arn=cf.execution_role(cfn),
        )
    except ClientError as exc:
        if cf.NO_UPDATES in str(exc):  # some endpoints refuse an empty change set outright
            return Result(name, "no-change", endpoint=cf.outputs_of(stack).get("EndpointUrl", ""))
        raise
    executing = False
    try:
        described = cf.wait_change_set(cfn, name, change_set, cancel)
        if cf.is_empty(described):
            return Result(name, "no-change", endpoint=cf.outputs_of(stack).get("EndpointUrl", ""))
        if described["Status"] == "FAILED":
            return Result(name, "failed", reasons=[f"change set: {described.get('StatusReason', '')}"])
        if cancel.is_set():
            raise cf.Cancelled
        cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
        executing = True
        final = cf.wait(cfn, name, timeout=options.timeout, events=events, on_event=report, cancel=cancel)
        new_subscriptions = kind == "CREATE" or any(
            c.get("ResourceChange", {}).get("ResourceType") == "AWS::SNS::Subscription"
            and c["ResourceChange"].get("Action") == "Add"
            for c in described.get("Changes", [])
        )
    finally:
        if not executing:
            cf.delete_change_set(cfn, name, change_set)
            if kind == "CREATE":
                cf.delete_shell(cfn, name)
    status = (final or {}).get("StackStatus", "GONE")
    if status not in cf.SUCCESS:
        reasons = events.failures or [f"{status}: {(final or {}).get('StackStatusReason', '')}"]
        return Result(name, "failed", reasons=reasons)
    if guard.protected(state.environment, options.environments):
        # Deleting a prod endpoint takes a deliberate step (prune with --yes turns this off first).
        cfn.update_termination_protection(StackName=name, EnableTerminationProtection=True)
    if new_subscriptions:
        for address in pending_confirmations(state.text):
            report(
                f"alarm e-mail to {address} is pending: Amazon SNS has sent it a confirmation link, and "
                "no alarm or budget notice reaches it until someone opens that link"
            )
    return Result(
        name,
        "created" if kind == "CREATE" else "updated",
        endpoint=cf.outputs_of(final).get("EndpointUrl", ""),
    )


def pending_confirmations(template_text: str) -> list[str]:
    """E-mail addresses the template subscribes to a topic: SNS waits for each to confirm by a link.

    https://docs.aws.amazon.com/sns/latest/dg/sns-email-notifications.html
    """
    resources = json.loads(template_text).get("Resources", {})
    return sorted(
        r["Properties"]["Endpoint"]
        for r in resources.values()
        if r.get("Type") == "AWS::SNS::Subscription" and r.get("Properties", {}).get("Protocol") == "email"
    )


def prune(
    wanted: set[str], regions: set[str], environments: set[str] | None, *, allow_prod: bool, options: Options,
    cancel: threading.Event,
) -> list[Result]:  # fmt: skip
    """Delete our stacks (management tag) that no file asks for; stacks we did not create are never seen."""
    results = []
    for region in sorted(regions):
        cfn = aws.client("cloudformation", region)
        for stack in managed_stacks(region):
            name = stack["StackName"]
            env = cf.tags_of(stack).get("deployctl:environment", "")
            if name in wanted or (environments is not None and env not in environments):
                continue
            if guard.protected(env, options.environments) and not allow_prod:
                results.append(Result(name, "skipped", reasons=[f"a {env} stack: prune it with --yes"]))
                continue
            started = time.monotonic()
            try:
                cf.delete_stack(cfn, name, timeout=options.timeout, cancel=cancel)
                results.append(Result(name, "deleted", time.monotonic() - started))
            except Exception as exc:
                results.append(Result(name, "failed", time.monotonic() - started, reasons=[str(exc)]))
    return results
