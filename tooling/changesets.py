"""Plans from AWS itself: a change set per stack, read with property values, then deleted.

Every change set the plan creates is deleted afterwards, and so is every REVIEW_IN_PROGRESS shell that a
CREATE change set made for a stack that does not exist yet: a plan leaves the account as it found it,
or says on the stack what it could not remove. A stack whose plan fails (throttling past the retries, a
dropped connection, an HTML error page) is that stack's error; the other stacks are planned.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tooling import aws, certificates
from tooling import cloudformation as cf
from tooling.diff import PropertyChange, ResourceChange, diff_templates
from tooling.ownership import (
    COMMIT_TAG,
    DEPLOYMENT_TAG,
    ENVIRONMENT_TAG,
    FILE_TAG,
    MANAGEMENT_TAG,
    REGIONS_TAG,
    default_regions,
    find,
    ownership_tags,
)
from tooling.plan import ORDER, Plan, StackPlan, stack_action, stack_hash
from tooling.snapshot import Snapshot, StackState

PLAN_TAGS = {"GatewayImageTag": "not-yet-built", "VllmImageTag": "not-yet-built"}


class MissingParameter(Exception):
    pass


class BadImageTag(MissingParameter):
    """A given image tag the template's parameter refuses (another vLLM version's image, say)."""


def parameters(
    state: StackState,
    existing: dict[str, Any] | None,
    image_tags: Mapping[str, str] | None,
    defaults: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Image tags: the one given, else the deployed stack's while it still fits the template, else the
    checkout's (`defaults`: tooling/release/images.py). Parameters with a default are left out: the
    template's default is the value we mean, on every update too.

    A deployed tag stops fitting when engine.version changed (VllmImageTag admits one version's tags),
    so a version bump deploys that version's image without being told. A given tag that does not fit is
    refused here, before any change set: CloudFormation would refuse it too (AllowedPattern), later.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html
    """
    declared = json.loads(state.text or "{}").get("Parameters", {})
    deployed = {p["ParameterKey"]: p.get("ParameterValue") for p in (existing or {}).get("Parameters", [])}
    out: list[dict[str, Any]] = []
    for key, spec in sorted(declared.items()):
        if "Default" in spec:
            continue
        pattern = spec.get("AllowedPattern")
        if image_tags and key in image_tags:
            if not fits(pattern, image_tags[key]):
                raise BadImageTag(
                    f"{state.stack_name}: {key} {image_tags[key]!r} does not match {pattern}"
                    + (f" ({spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else "")
                )
            out.append({"ParameterKey": key, "ParameterValue": image_tags[key]})
        elif key in deployed and fits(pattern, deployed[key]):
            out.append({"ParameterKey": key, "UsePreviousValue": True})
        elif defaults and key in defaults:
            out.append({"ParameterKey": key, "ParameterValue": defaults[key]})
        elif key in deployed:
            raise MissingParameter(
                f"{state.stack_name}: the deployed {key} {deployed[key]!r} does not match {pattern} "
                "(engine.version changed?) and the checkout names no image; pass --image-tag"
            )
        else:
            raise MissingParameter(f"{state.stack_name}: no value for {key}; pass --image-tag")
    return out


def fits(pattern: str | None, value: str | None) -> bool:
    """Whether CloudFormation's AllowedPattern check would take `value` (the whole value must match).

    Our patterns are plain enough that Python's `re` reads them as CloudFormation does; one it cannot
    compile is left to CloudFormation to judge."""
    if value is None:
        return False
    if not pattern:
        return True
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True


def given_tags(params: list[dict[str, Any]]) -> dict[str, str]:
    """The image tags these parameters set (the kept ones, UsePreviousValue, are not in it)."""
    return {
        p["ParameterKey"]: p["ParameterValue"]
        for p in params
        if p["ParameterKey"].endswith("ImageTag") and "ParameterValue" in p
    }


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


def stack_tags(
    state: StackState, digest: str, *, repository: str, commit: str = "", regions: Iterable[str] = ()
) -> dict[str, str]:
    """Every tag of our stacks: ownership, the fast path's hash, the commit deployed, our regions."""
    tags = {**ownership_tags(state, repository), cf.HASH_TAG: digest}
    if commit:
        tags[COMMIT_TAG] = commit
    if recorded := " ".join(sorted(set(regions) | {state.region})):
        tags[REGIONS_TAG] = recorded[:256]  # a tag value holds 256 characters
    return {k: v for k, v in tags.items() if v}  # a tag value is 1 to 256 characters


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
    head: Snapshot, *, image_tag: Mapping[str, str] | None, max_parallel: int = 4,
    only: set[str] | None = None, repository: str = "", regions: Iterable[str] = (),
    environments: Any = None, defaults: Mapping[str, Mapping[str, str]] | None = None,
) -> Plan:  # fmt: skip
    """A change set per stack in `only` (default: all), then deleted; one stack's failure is that
    stack's error, and the others go on. `defaults`: per stack, the checkout's image tags, which a
    deploy without --image-tag sets where it cannot keep the deployed ones (a new stack)."""
    chosen = [s for n, s in head.stacks.items() if only is None or n in only]
    plans: list[StackPlan] = []
    for state in chosen:
        if not state.valid:
            plans.append(
                StackPlan(state.environment, state.name, state.stack_name, "invalid", errors=state.errors,
                          warnings=state.warnings, region=state.region, file=state.file)
            )  # fmt: skip
    valid = [s for s in chosen if s.valid]
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        # Each worker deletes its change set and shell in `finally`; leaving the block waits for them,
        # so an interrupted plan still cleans up what it made.
        plans += list(
            pool.map(
                lambda s: _plan_stack(
                    s, image_tag, repository, environments, (defaults or {}).get(s.stack_name)
                ),
                valid,
            )
        )
    problems = list(head.problems)
    if repository:
        planned = {s.environment for s in chosen}
        found, errors, kept = _orphans(head, repository, planned, set(regions))
        plans += found
        problems += [f"{region}: could not list stacks: {error}" for region, error in errors.items()]
        problems += kept
    else:
        problems.append(
            "no repository identity (see `deployctl deploy --help`): stacks to delete are not shown"
        )
    plans.sort(key=lambda s: (ORDER[s.action], s.stack_name, s.region))
    return Plan("aws", plans, problems)


def placeholders(state: StackState) -> dict[str, str]:
    """Tags for the change set of a new stack whose images the checkout cannot name (never executed)."""
    tags = dict(PLAN_TAGS)
    if state.vllm_version:
        tags["VllmImageTag"] = f"{state.vllm_version}-{'0' * 40}"
    return tags


def _plan_stack(
    state: StackState, image_tag: Mapping[str, str] | None, repository: str = "", environments: Any = None,
    defaults: Mapping[str, str] | None = None,
) -> StackPlan:  # fmt: skip
    from tooling.accounts import guard  # noqa: PLC0415

    result = StackPlan(
        state.environment,
        state.name,
        state.stack_name,
        "no-change",
        warnings=list(state.warnings),
        region=state.region,
        file=state.file,
    )
    tags = ownership_tags(state, repository)
    result.hash = stack_hash(state.text or "", tags, image_tag)
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
    name = ""
    existing: dict[str, Any] | None = None
    cfn = None
    try:
        cfn = aws.client("cloudformation", state.region)
        existing = cf.describe(cfn, state.stack_name)
        status = (existing or {}).get("StackStatus", "")
        if status == "DELETE_FAILED":
            result.action = "invalid"
            result.errors = [cf.delete_failed_report(cfn, state.stack_name, existing)]
            return result
        if status in cf.RECREATE and status != "REVIEW_IN_PROGRESS":
            # A stack whose creation failed cannot be updated, and a CREATE change set for its name
            # is refused (AlreadyExistsException): a deploy deletes it and creates it again.
            result.action = "create"
            result.recreate = cf.recreate_reason(cfn, state.stack_name, existing)
            result.changes = diff_templates(None, json.loads(state.text or "{}"), state.region)
            return result
        shell = existing is None or status == "REVIEW_IN_PROGRESS"
        try:
            params = parameters(state, None if shell else existing, image_tag, defaults)
            # What a deploy of this checkout sets, shown and bound to the plan's hash.
            result.image_tags = given_tags(params) or None
            result.hash = stack_hash(state.text or "", tags, result.image_tags or image_tag)
        except BadImageTag as exc:
            result.action, result.errors = "invalid", [str(exc)]
            return result
        except MissingParameter:
            # A plan of a new stack needs some tag to make its change set; it is never executed.
            params = parameters(state, None, {**placeholders(state), **(image_tag or {})})
        digest = cf.template_hash(
            state.text or "", parameter_values(state, params, None if shell else existing), tags
        )
        if not shell and cf.tags_of(existing).get(cf.HASH_TAG) == digest:
            return result  # what was deployed is exactly this: no change set needed
        name = f"deployctl-plan-{uuid.uuid4().hex[:12]}"
        cf.create_change_set(
            cfn,
            state.stack_name,
            name,
            kind="CREATE" if shell else "UPDATE",
            template=cf.template_argument(state.text or "", state.stack_name, state.region, purpose="plan"),
            parameters=params,
            tags=stack_tags(state, "plan", repository=repository),
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
        result.action, result.errors = "invalid", [f"could not plan this stack: {cf.describe_error(exc)}"]
        return result
    finally:
        if cfn is not None:
            result.errors += cf.clean_up(cfn, state.stack_name, name, shell=bool(name) and existing is None)


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


def all_stacks(region: str) -> list[dict[str, Any]]:
    """Every stack in `region` with its tags (DescribeStacks, every page)."""
    cfn = aws.client("cloudformation", region)
    return [stack for page in cfn.get_paginator("describe_stacks").paginate() for stack in page["Stacks"]]


def managed_stacks(region: str) -> list[dict[str, Any]]:
    """Every stack in `region` that carries our management tag (and only those)."""
    return [
        stack
        for stack in all_stacks(region)
        if cf.tags_of(stack).get(MANAGEMENT_TAG) == "deployctl" and stack["StackStatus"] != "DELETE_COMPLETE"
    ]


def orphans(
    head: Snapshot, repository: str, environments: set[str] | None, regions: set[str]
) -> tuple[list[tuple[str, dict[str, Any], str]], dict[str, str], list[str]]:
    """Stacks of this repository and of `environments` that no deployment asks for, in every region
    where our stacks exist: (region, stack, why), the regions that could not be listed, and the
    stacks kept because their file is still there under another name (a typo is no deletion)."""
    wanted = {(s.stack_name, s.region) for s in head.stacks.values()}
    files = {s.file: s for s in head.stacks.values()}
    search = regions | {s.region for s in head.stacks.values() if s.region} | default_regions()
    found = find(repository, search, environments)
    out, kept = [], []
    for region, stack in found.stacks:
        name, tags = stack["StackName"], cf.tags_of(stack)
        if (name, region) in wanted:
            continue
        moved = next((s for s in head.stacks.values() if s.stack_name == name), None)
        owner = files.get(tags.get(FILE_TAG, ""))
        if moved is not None:
            out.append((region, stack, f"{moved.file} moved it to {moved.region}"))
        elif owner is not None:
            kept.append(
                f"{name} ({region}): kept; {owner.file} still exists but now names {owner.stack_name}; "
                "rename it back, or delete the old stack yourself"
            )
        else:
            out.append((region, stack, f"{tags.get(FILE_TAG) or 'its deployment file'} is gone"))
    return out, found.errors, kept


def _orphans(
    head: Snapshot, repository: str, environments: set[str], regions: set[str]
) -> tuple[list[StackPlan], dict[str, str], list[str]]:
    """Our stacks whose deployment file is gone (or whose region changed): the plan deletes them."""
    found, errors, kept = orphans(head, repository, environments, regions)
    plans = []
    for region, stack, why in found:
        tags = cf.tags_of(stack)
        plan = StackPlan(
            tags.get(ENVIRONMENT_TAG, ""),
            tags.get(DEPLOYMENT_TAG, ""),
            stack["StackName"],
            "delete",
            region=region,
            file=tags.get(FILE_TAG, ""),
            warnings=[why],
        )
        plans.append(plan)
    return plans, errors, kept
