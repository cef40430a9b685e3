"""Undoing a failed release: the environment put back exactly as the previous release record has it.

- A stack in the previous record that the failed release touched (created, updated, failed or was
  interrupted on) is deployed again from the record: its template bytes and parameter values as they
  ran, tagged with the record's commit. Nothing is rendered, so old files are never built by new code.
  One CloudFormation already rolled back carries the record's hash tag again and costs one
  DescribeStacks (tooling/deploy.py's fast path).
- A stack the failed release did not touch is left exactly as it is.
- A stack the failed release created (it did not exist before) is deleted, if it carries this
  repository's and environment's ownership tags (tooling/ownership.py).
- Anything else the failed release touched is left as it is and reported: with no previous record
  (the first release) there is nothing to restore it to.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from tooling import aws, ownership
from tooling import cloudformation as cf
from tooling import deploy as engine
from tooling.release.records import Record
from tooling.snapshot import StackState

TOUCHED = ("created", "updated", "failed", "interrupted")


def roll_back(
    previous: Record | None,
    states: list[StackState],
    before: dict[str, dict[str, Any] | None],
    results: list[engine.Result],
    options: engine.Options,
    cancel: threading.Event,
    *,
    environment: str,
) -> list[engine.Result]:
    """Restore `previous` (None: there is none) after the release of `states` ended with `results`;
    `before` is each stack as it was before the release (None: it did not exist)."""
    recorded = previous.stacks if previous is not None else {}
    outcome = {r.stack_name: r.outcome for r in results}
    # Only what this release touched: a stack it left alone stays as it is, whatever it runs.
    touched = {name: s for name, s in recorded.items() if outcome.get(name) in TOUCHED}
    restore = [StackState(environment, s.name, s.file, s.region, text=s.template) for s in touched.values()]
    undone: list[engine.Result] = []
    if previous is not None and restore:
        restoring = dataclasses.replace(
            options,
            image_tags={},
            stack_image_tags={name: dict(s.parameters) for name, s in touched.items()},
            commit=previous.commit,
            allow_revert=True,  # back to the record's commit is the point
            image_wait=0.0,  # the record's images ran a moment ago: they are in the region
        )
        undone += engine.deploy_all(restore, restoring, cancel)
    for state in states:
        name = state.stack_name
        if name in recorded and recorded[name].region == state.region:
            continue  # restored above (a file moved to another region made a new stack there: below)
        existed = before.get(name) is not None and before[name]["StackStatus"] != "REVIEW_IN_PROGRESS"
        if not existed:
            undone.append(_delete_created(state, options, cancel, environment))
        elif outcome.get(name) in TOUCHED:
            undone.append(
                engine.Result(
                    name,
                    "kept",
                    reasons=[
                        "no release record holds this stack, so there is nothing to restore it to: left as "
                        "the failed release made it"
                    ],
                )
            )
    return undone


def _delete_created(
    state: StackState, options: engine.Options, cancel: threading.Event, environment: str
) -> engine.Result:
    name = state.stack_name
    started = time.monotonic()
    cfn = aws.client("cloudformation", state.region)
    try:
        stack = cf.describe(cfn, name)
        if stack is None:
            return engine.Result(name, "unchanged", reasons=["not created: nothing to delete"])
        if not ownership.is_ours(stack, options.repository, {environment}):
            return engine.Result(name, "kept", reasons=[f"not tagged as {options.repository}'s: left alone"])
        status = stack["StackStatus"]
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            # A create the release stopped waiting for (its timeout) still runs: termination protection
            # cannot change while a delete runs, and a stack mid-operation is no stack to delete yet.
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html
            stack = cf.wait(cfn, name, timeout=options.timeout, cancel=cancel)
            if stack is None:
                return engine.Result(name, "deleted", time.monotonic() - started,
                                     reasons=["gone by the time its create ended"])  # fmt: skip
        # The failed release just created it, so its termination protection is this release's own.
        cf.delete_stack(cfn, name, timeout=options.timeout, cancel=cancel, lift_protection=True)
    except Exception as exc:
        return engine.Result(
            name, "failed", time.monotonic() - started, reasons=[cf.delete_error(cfn, name, exc)]
        )
    return engine.Result(name, "deleted", time.monotonic() - started)
