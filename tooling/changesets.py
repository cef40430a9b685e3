"""Plans from AWS itself: a change set per stack, read with property values, then deleted.

Every change set the plan creates is deleted afterwards, and so is every REVIEW_IN_PROGRESS shell that a
CREATE change set made for a stack that does not exist yet: a plan leaves the account as it found it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tooling import aws, certificates
from tooling import cloudformation as cf
from tooling.diff import PropertyChange, ResourceChange
from tooling.plan import ORDER, Plan, StackPlan, stack_action
from tooling.snapshot import Snapshot, StackState

MANAGEMENT_TAG = "deployctl:managed-by"
PLAN_TAGS = {"GatewayImageTag": "not-yet-built", "VllmImageTag": "not-yet-built"}


class MissingParameter(Exception):
    pass


def parameters(
    state: StackState, existing: dict[str, Any] | None, image_tags: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    """Image tags: the one given, else the deployed stack's. Parameters with a default are left out:
    the template's default is the value we mean, on every update too."""
    declared = json.loads(state.text or "{}").get("Parameters", {})
    deployed = {p["ParameterKey"] for p in (existing or {}).get("Parameters", [])}
    out: list[dict[str, Any]] = []
    for key, spec in sorted(declared.items()):
        if "Default" in spec:
            continue
        if image_tags and key in image_tags:
            out.append({"ParameterKey": key, "ParameterValue": image_tags[key]})
        elif key in deployed:
            out.append({"ParameterKey": key, "UsePreviousValue": True})
        else:
            raise MissingParameter(f"{state.stack_name}: no value for {key}; pass --image-tag")
    return out


def parameter_values(
    state: StackState, params: list[dict[str, Any]], stack: dict[str, Any] | None
) -> dict[str, str]:
    """The parameter values that decide the stack: given, or kept from the deployed stack.

    A parameter left at its template default is already in the template's hash; SSM-typed ones also
    read back resolved, so they are left out rather than compared.
    """
    declared = json.loads(state.text or "{}").get("Parameters", {})
    deployed = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", [])}
    given = {p["ParameterKey"]: p.get("ParameterValue") for p in params}
    values = {}
    for key, spec in declared.items():
        if given.get(key) is not None:
            values[key] = str(given[key])
        elif "Default" not in spec:
            values[key] = deployed.get(key, "")
    return values


def stack_tags(state: StackState, digest: str) -> dict[str, str]:
    return {
        MANAGEMENT_TAG: "deployctl",
        "deployctl:environment": state.environment,
        "deployctl:deployment": state.name,
        "deployctl:stack": state.stack_name,
        cf.HASH_TAG: digest,
    }


def image_tags(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--image-tag` values: `TAG` for every image, or `gateway=TAG` / `vllm=TAG` for one."""
    names = {"gateway": "GatewayImageTag", "vllm": "VllmImageTag"}
    tags: dict[str, str] = {}
    for value in values:
        image, sep, tag = value.partition("=")
        if not sep:
            tags.update(dict.fromkeys(names.values(), value))
        elif image in names and tag:
            tags[names[image]] = tag
        else:
            raise ValueError(f"--image-tag {value!r}: use TAG, gateway=TAG or vllm=TAG")
    return tags


def plan(
    head: Snapshot, *, image_tag: Mapping[str, str] | None, max_parallel: int = 4, environments: Any = None
) -> Plan:
    plans: list[StackPlan] = []
    valid = [s for s in head.stacks.values() if s.valid]
    for state in head.stacks.values():
        if not state.valid:
            plans.append(
                StackPlan(
                    state.environment,
                    state.name,
                    state.stack_name,
                    "invalid",
                    errors=state.errors,
                    warnings=state.warnings,
                    region=state.region,
                )
            )
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        plans += list(pool.map(lambda s: _plan_stack(s, image_tag, environments), valid))
    plans += _orphans(head)
    plans.sort(key=lambda s: (ORDER[s.action], s.stack_name))
    return Plan("aws", plans, list(head.problems))


def _plan_stack(
    state: StackState, image_tag: Mapping[str, str] | None, environments: Any = None
) -> StackPlan:
    from tooling.accounts import guard  # noqa: PLC0415

    result = StackPlan(state.environment, state.name, state.stack_name, "no-change", warnings=state.warnings,
                       region=state.region)  # fmt: skip
    # Wrong account, a region the environment may not use, or an image tag missing from the stack's
    # own region: the plan says so instead of showing changes that could not be deployed.
    if problems := guard.before_change(
        state.stack_name,
        state.environment,
        state.region,
        state.text or "",
        dict(image_tag or {}),
        environments,
    ):
        result.action, result.errors = "invalid", problems
        return result
    verdict = certificates.check(state.text or "{}", state.region)
    result.warnings = [*result.warnings, *verdict.warnings]
    if verdict.errors:
        result.action, result.errors = "invalid", verdict.errors
        return result
    cfn = aws.client("cloudformation", state.region)
    existing = cf.describe(cfn, state.stack_name)
    shell = existing is None or existing["StackStatus"] in cf.RECREATE
    name = f"deployctl-plan-{uuid.uuid4().hex[:12]}"
    try:
        try:
            params = parameters(state, None if shell else existing, image_tag)
        except MissingParameter:
            # A plan of a new stack needs some tag to make its change set; it is never executed.
            params = parameters(state, None, {**PLAN_TAGS, **(image_tag or {})})
        digest = cf.template_hash(
            state.text or "", parameter_values(state, params, None if shell else existing)
        )
        if not shell and cf.tags_of(existing).get(cf.HASH_TAG) == digest:
            name = ""  # what was deployed is exactly this: no change set needed
            return result
        cf.create_change_set(
            cfn,
            state.stack_name,
            name,
            kind="CREATE" if existing is None else ("CREATE" if shell else "UPDATE"),
            template=cf.template_argument(state.text or "", state.stack_name, state.region),
            parameters=params,
            tags=stack_tags(state, "plan"),
        )
        described = cf.wait_change_set(cfn, state.stack_name, name)
        if cf.is_empty(described):
            return result
        if described["Status"] == "FAILED":
            result.action, result.errors = (
                "invalid",
                [f"change set failed: {described.get('StatusReason', '')}"],
            )
            return result
        result.changes = [translate(c) for c in described["Changes"] if c.get("Type") == "Resource"]
        result.action = "create" if shell else stack_action(result.changes)
        return result
    except Exception as exc:
        if cf.NO_UPDATES in str(exc):  # some endpoints refuse an empty change set outright
            return result
        result.action, result.errors = "invalid", [f"{type(exc).__name__}: {exc}"]
        return result
    finally:
        if name:
            cf.delete_change_set(cfn, state.stack_name, name)
        if existing is None:
            cf.delete_shell(cfn, state.stack_name)


def translate(change: dict[str, Any]) -> ResourceChange:
    """A change set's ResourceChange in the plan's terms (the same shape the offline diff produces)."""
    rc = change["ResourceChange"]
    action = {"Add": "add", "Remove": "remove"}.get(rc["Action"], "modify")
    replacement = {"True": "true", "Conditional": "conditional"}.get(rc.get("Replacement", "False"), "false")
    properties = []
    for detail in rc.get("Details", []):
        target = detail.get("Target", {})
        path = target.get("Path") or ".".join(p for p in ("Properties", target.get("Name")) if p)
        properties.append(
            PropertyChange(path, _value(target.get("BeforeValue")), _value(target.get("AfterValue")))
        )
    return ResourceChange(
        rc["LogicalResourceId"], rc.get("ResourceType", ""), action, replacement, properties
    )


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def managed_stacks(region: str) -> list[dict[str, Any]]:
    """Every stack in `region` that carries our management tag (and only those)."""
    cfn = aws.client("cloudformation", region)
    found = []
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if (
                cf.tags_of(stack).get(MANAGEMENT_TAG) == "deployctl"
                and stack["StackStatus"] != "DELETE_COMPLETE"
            ):
                found.append(stack)
    return found


def _orphans(head: Snapshot) -> list[StackPlan]:
    """Our stacks in the regions in use whose deployment file is gone: the plan deletes them."""
    regions = sorted({s.region for s in head.stacks.values() if s.region})
    plans = []
    for region in regions:
        for stack in managed_stacks(region):
            tags = cf.tags_of(stack)
            env, name = tags.get("deployctl:environment", ""), tags.get("deployctl:deployment", "")
            if stack["StackName"] not in head.stacks:
                plans.append(StackPlan(env, name, stack["StackName"], "delete", region=region))
    return plans
