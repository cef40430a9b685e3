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
from pathlib import Path

from tooling import aws, certificates
from tooling import cloudformation as cf
from tooling.accounts import guard
from tooling.accounts import images as registry
from tooling.accounts.environments import Environments
from tooling.changesets import given_tags, orphans, parameter_values, parameters, stack_tags
from tooling.ownership import COMMIT_TAG, ownership_tags
from tooling.snapshot import Snapshot, StackState

# created | updated | unchanged | no-change | deleted | failed | refused | skipped | interrupted
Outcome = str
FAILED = ("failed", "invalid", "interrupted", "refused")


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
    # stack name -> the checkout's tags (tooling/release/images.py checkout_tags): set where nothing is
    # given and the stack has no tag of its own that still fits (a new stack, a new engine.version)
    default_image_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    timeout: float = 3600.0
    max_parallel: int = 4
    on_event: Callable[[str, str], None] = lambda stack, line: None
    # deployments/environments.yaml (None: no such file; the credentials' account is used as it is)
    environments: Environments | None = None
    # Seconds to wait for a new image to replicate into a stack's region before failing it.
    image_wait: float = 0.0
    repository: str = ""  # owner/name, written on every stack (tooling/ownership.py)
    commit: str = ""  # the checkout's HEAD, recorded on every stack it deploys
    root: Path | None = None  # the checkout, for commit ancestry
    regions: set[str] = field(default_factory=set)  # where our stacks are, recorded on each stack
    yes: bool = False  # prod: recreate a failed stack, lift termination protection to prune
    allow_revert: bool = False  # deploy a commit that is not a descendant of the stack's
    # `deploy --plan`: the (stack, region) deletions the reviewed plan showed; None: no plan given
    reviewed_deletions: set[tuple[str, str]] | None = None


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
        # ContinueUpdateRollback returns the stack to UPDATE_ROLLBACK_COMPLETE, a working state that
        # takes an update again; only a rollback that fails once more stops here. A release's rollback
        # relies on it: the stack it must restore is often the one whose update could not roll back.
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ContinueUpdateRollback.html
        report("UPDATE_ROLLBACK_FAILED: continuing the rollback")
        cf.mark(cfn, name, events)
        cfn.continue_update_rollback(StackName=name)
        stack = cf.wait(cfn, name, timeout=options.timeout, events=events, on_event=report, cancel=cancel)
        if stack is None or stack["StackStatus"] != "UPDATE_ROLLBACK_COMPLETE":
            return Result(
                name,
                "failed",
                reasons=[
                    "the stack was UPDATE_ROLLBACK_FAILED; ContinueUpdateRollback brought it to "
                    f"{(stack or {}).get('StackStatus', 'unknown')}; fix the cause (or skip the resources "
                    "that cannot roll back: aws cloudformation continue-update-rollback --resources-to-skip)"
                    " and deploy again",
                    *events.failures,
                ],
            )
        report("UPDATE_ROLLBACK_COMPLETE: the rollback finished; deploying")
        events = cf.Events()  # the rollback's failures are not this deploy's
    if stack is not None and stack["StackStatus"] == "DELETE_FAILED":
        return Result(name, "failed", reasons=[cf.delete_failed_report(cfn, name, stack)])
    tags = ownership_tags(state, options.repository)
    recreate = stack is not None and stack["StackStatus"] in cf.RECREATE
    params = parameters(state, None if recreate else stack, given, options.default_image_tags.get(name))
    # Tags the checkout chose (nobody passed them): in this region's registry before anything changes.
    chosen = {k: v for k, v in given_tags(params).items() if k not in given}
    if chosen and (
        problems := registry.check(
            name, state.region, registry.wanted(state.text, chosen), wait=options.image_wait, on_wait=report
        )
    ):
        return Result(name, "failed", reasons=problems)
    if recreate:
        assert stack is not None
        status = stack["StackStatus"]
        if status != "REVIEW_IN_PROGRESS":  # an empty shell holds no resources: nothing to protect
            if guard.protected(state.environment, options.environments) and not options.yes:
                return Result(name, "refused", reasons=[
                    f"{cf.recreate_reason(cfn, name, stack)}: recreating a prod stack deletes it first; "
                    "deploy with --yes to allow it"])  # fmt: skip
            # Everything a create needs is checked before anything is deleted: parameters above, the
            # template here (ValidateTemplate), so a failed recreate never leaves the endpoint gone.
            cfn.validate_template(**cf.template_argument(state.text, name, state.region, purpose="deploy"))
        report(f"{status}: deleting it to create it again")
        cf.delete_stack(cfn, name, timeout=options.timeout, cancel=cancel,
                        lift_protection=options.yes
                        or not guard.protected(state.environment, options.environments))  # fmt: skip
        stack = None

    digest = cf.template_hash(state.text, parameter_values(state, params, stack), tags)
    if stack is not None and cf.tags_of(stack).get(cf.HASH_TAG) == digest:
        return Result(name, "unchanged", endpoint=cf.outputs_of(stack).get("EndpointUrl", ""))
    if stack is not None and (refusal := _backwards(cf.tags_of(stack).get(COMMIT_TAG, ""), options)):
        return Result(name, "refused", reasons=[refusal])

    kind = "CREATE" if stack is None else "UPDATE"
    applied = cf.apply_change_set(
        cfn,
        name,
        f"deployctl-{uuid.uuid4().hex[:12]}",
        kind=kind,
        template=cf.template_argument(state.text, name, state.region, purpose="deploy"),
        parameters=params,
        tags=stack_tags(
            state, digest, repository=options.repository, commit=options.commit, regions=options.regions
        ),
        role_arn=cf.execution_role(cfn),
        events=events,
        timeout=options.timeout,
        on_event=report,
        cancel=cancel,
    )
    if applied.outcome == "no-change":
        return Result(name, "no-change", endpoint=cf.outputs_of(stack).get("EndpointUrl", ""))
    if applied.outcome == "change-set-failed":
        return Result(name, "failed", reasons=[f"change set: {applied.reason}"])
    if applied.error is not None:
        raise applied.error
    final = applied.final
    new_subscriptions = kind == "CREATE" or any(
        c.get("ResourceChange", {}).get("ResourceType") == "AWS::SNS::Subscription"
        and c["ResourceChange"].get("Action") == "Add"
        for c in applied.described.get("Changes", [])
    )
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


def _backwards(deployed: str, options: Options) -> str | None:
    """Why deploying would move the stack to an older commit's template (None: it would not)."""
    if not deployed or options.allow_revert or deployed == options.commit:
        return None
    from tooling import gitbase  # noqa: PLC0415

    if not options.commit or options.root is None:
        return (
            f"the stack was deployed from commit {deployed[:12]} and this checkout is not a git "
            "checkout: cannot tell whether this moves it back; pass --allow-revert if it may"
        )
    ancestor = gitbase.is_ancestor(options.root, deployed, options.commit)
    if ancestor is None:
        return (
            f"the stack runs commit {deployed[:12]}, and this clone cannot tell whether it is an "
            f"ancestor of {options.commit[:12]}: fetch the history (git fetch --unshallow origin, or "
            "check out with fetch-depth: 0), or pass --allow-revert"
        )
    if not ancestor:
        return (
            f"the stack runs commit {deployed[:12]}, which is not an ancestor of this checkout "
            f"({options.commit[:12]}): deploying would revert it; pass --allow-revert to do so"
        )
    return None


def prune_blockers(head: Snapshot, environments: set[str] | None) -> list[str]:
    """Why prune must not run: any file of these environments that failed to load makes a live stack
    look orphaned (a typo'd name, a dangling link, an unreadable folder)."""
    blockers = list(head.problems)
    for state in head.stacks.values():
        if (environments is None or state.environment in environments) and not state.valid:
            blockers.append(f"{state.file}: did not load")
    return blockers


def prune(
    head: Snapshot, environments: set[str] | None, *, options: Options, cancel: threading.Event,
    on_list: Callable[[list[str]], None] = lambda lines: None,
) -> list[Result]:  # fmt: skip
    """Delete the stacks of this repository and of `environments` that no file asks for, in every
    region where our stacks are; stacks of other repositories or environments are never looked at.
    The list is reported (`on_list`) before anything is deleted."""
    if not options.repository:
        return [Result("(prune)", "refused", reasons=["no repository identity: nothing is pruned"])]
    if blockers := prune_blockers(head, environments):
        return [Result("(prune)", "refused", reasons=["not pruning: some files did not load", *blockers])]
    found, errors, kept = orphans(head, options.repository, environments, options.regions)
    results = [
        Result(f"(prune {region})", "refused", reasons=[f"could not list stacks: {error}; nothing pruned"])
        for region, error in errors.items()
    ]
    results += [Result(line.split(" ", 1)[0], "skipped", reasons=[line]) for line in kept]
    if errors:
        return results
    on_list([f"{stack['StackName']} ({region}): {why}" for region, stack, why in found])
    for region, stack, why in found:
        name = stack["StackName"]
        env = cf.tags_of(stack).get("deployctl:environment", "")
        if options.reviewed_deletions is not None and (name, region) not in options.reviewed_deletions:
            results.append(
                Result(name, "refused", reasons=[f"{why}, but the reviewed plan did not delete it"])
            )
            continue
        protected = guard.protected(env, options.environments)
        if protected and not options.yes:
            results.append(Result(name, "refused", reasons=[f"a {env} stack ({why}): prune it with --yes"]))
            continue
        cfn = aws.client("cloudformation", region)
        started = time.monotonic()
        try:
            current = cf.describe(cfn, name)
            if current is not None and current["StackStatus"] == "DELETE_FAILED":
                results.append(Result(name, "failed", reasons=[cf.delete_failed_report(cfn, name, current)]))
                continue
            cf.delete_stack(
                cfn,
                name,
                timeout=options.timeout,
                cancel=cancel,
                lift_protection=not protected or options.yes,
            )
            results.append(Result(name, "deleted", time.monotonic() - started, reasons=[]))
        except Exception as exc:
            results.append(
                Result(name, "failed", time.monotonic() - started, reasons=[cf.delete_error(cfn, name, exc)])
            )
    return results
