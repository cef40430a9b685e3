"""Drift: resources of our stacks changed or deleted outside CloudFormation since the last deploy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tooling import aws


@dataclass
class Drift:
    stack_name: str
    status: str  # IN_SYNC, DRIFTED, UNKNOWN, or FAILED: <reason>
    resources: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # id, type, status, paths


def detect(stack_name: str, region: str, *, timeout: float = 600.0, poll: float = 3.0) -> Drift:
    cfn = aws.client("cloudformation", region)
    detection = cfn.detect_stack_drift(StackName=stack_name)["StackDriftDetectionId"]
    deadline = time.monotonic() + timeout
    while True:
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
        if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            break
        if time.monotonic() > deadline:
            return Drift(stack_name, "FAILED: drift detection timed out")
        time.sleep(poll)
    if status["DetectionStatus"] == "DETECTION_FAILED":
        return Drift(stack_name, f"FAILED: {status.get('DetectionStatusReason', '')}")
    result = Drift(stack_name, status.get("StackDriftStatus", "UNKNOWN"))
    token: dict[str, str] = {}
    while True:
        page = cfn.describe_stack_resource_drifts(
            StackName=stack_name, StackResourceDriftStatusFilters=["MODIFIED", "DELETED"], **token
        )
        for drift in page["StackResourceDrifts"]:
            paths = [d["PropertyPath"] for d in drift.get("PropertyDifferences", [])]
            result.resources.append(
                (drift["LogicalResourceId"], drift["ResourceType"], drift["StackResourceDriftStatus"], paths)
            )
        if not page.get("NextToken"):
            return result
        token = {"NextToken": page["NextToken"]}


# `deployctl drift` exit codes: a scheduled job tells "in sync" from "drifted" from "could not tell".
IN_SYNC, FAILED, DRIFTED = 0, 1, 2


def exit_code(drifts: list[Drift]) -> int:
    """FAILED when any detection did not finish (the report is incomplete: "in sync" cannot be
    claimed, and a failure must not read as drift), else DRIFTED when any stack drifted, else IN_SYNC.

    StackDriftStatus is DRIFTED, IN_SYNC, NOT_CHECKED ("hasn't checked") or UNKNOWN ("could not run drift
    detection for a resource"); only the first two answer the question:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackDriftInformationSummary.html
    """
    if any(d.status not in ("IN_SYNC", "DRIFTED") for d in drifts):
        return FAILED
    return DRIFTED if any(d.status == "DRIFTED" for d in drifts) else IN_SYNC


def to_markdown(drifts: list[Drift]) -> str:
    drifted = [d for d in drifts if d.status != "IN_SYNC"]
    lines = [
        f"**{len(drifts)} stacks: {len(drifts) - len(drifted)} in sync, {len(drifted)} drifted or unknown**",
        "",
    ]
    if drifted:
        lines += ["| stack | status | resource | type | change | properties |", "|---|---|---|---|---|---|"]
        for d in drifted:
            rows = d.resources or [("", "", "", [])]
            for logical, kind, status, paths in rows:
                lines.append(
                    f"| {d.stack_name} | {d.status} | {logical} | {kind} | {status} | {', '.join(paths)} |"
                )
    return "\n".join(lines) + "\n"
