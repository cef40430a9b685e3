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
