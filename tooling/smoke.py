"""Smoke tests of a live endpoint, the way a client sees it: HTTP to its URL, from where clients are.

Health, the model list, a chat completion, a streamed one (with its time to first token), a request
without a valid key refused with 401, and an image when the model takes images. The checks themselves
live in `templates/runtime/smoke_probe.py` (standard library only) and run in one of two places:

- here, in this process, when the endpoint is reachable from here (a public load balancer, or --url);
- in the stack's SmokeProbeFunction, a Lambda function in the stack's private subnets, when the load
  balancer is internal (network.public: false): a CI runner outside the VPC cannot reach it at all.

Either way the report is the same. The key is never printed: the report names where it came from, not
what it is; for the probe it travels only in the invocation payload (TLS to the Lambda API).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from templates.runtime import smoke_probe as probe
from templates.smoke_probe import OUTPUT as PROBE_OUTPUT
from templates.smoke_probe import PROBE_TIMEOUT_SECONDS

# The Lambda API holds a synchronous Invoke open until the function returns, up to its Timeout: the
# read timeout must outlast it, or botocore gives up on an invocation that is still running.
# https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
INVOKE_READ_TIMEOUT_SECONDS = PROBE_TIMEOUT_SECONDS + 60


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: str = ""
    first_token_seconds: float | None = None


@dataclass
class Report:
    deployment: str
    url: str
    model: str
    key_source: str
    checks: list[Check] = field(default_factory=list)
    # Where the checks ran: "here" (this process) or the probe function's name.
    ran_from: str = "here"

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _checks(found: list[dict[str, Any]]) -> list[Check]:
    return [
        Check(
            str(c["name"]),
            bool(c["ok"]),
            float(c["seconds"]),
            str(c.get("detail", "")),
            None if c.get("first_token_seconds") is None else float(c["first_token_seconds"]),
        )
        for c in found
    ]


def run(
    deployment: str,
    url: str,
    model: str,
    key: str | None,
    *,
    key_source: str,
    images: bool,
    timeout: float = probe.REQUEST_TIMEOUT_SECONDS,
    retries: int = 1,
) -> Report:
    """Smoke-test `url` (the endpoint, without /v1) from this process. `key` None: it takes no key."""
    found = probe.run(url, model, key, images=images, timeout=timeout, retries=retries)
    return Report(deployment, url.rstrip("/"), model, key_source, _checks(found))


def run_in_probe(
    lambda_client: Any,
    function: str,
    deployment: str,
    url: str,
    model: str,
    key: str | None,
    *,
    key_source: str,
    images: bool,
    retries: int = 1,
) -> Report:
    """The same checks, run by the stack's probe function inside its VPC (one synchronous Invoke).

    `lambda_client` must not retry (`tooling.aws.single_attempt_client`): a retried Invoke would run
    every check a second time. The one case retried here is a function Lambda has made Inactive (idle
    for weeks, its VPC network interfaces reclaimed): that Invoke fails without running the function,
    Lambda recreates the interfaces, and the function is invoked again once it is Active.
    https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html
    """
    event = {
        "deployment": deployment,
        "url": url,
        "model": model,
        "key": key,
        "key_source": key_source,
        "images": images,
        "retries": retries,
    }
    payload = json.dumps(event).encode()
    try:
        reply = lambda_client.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=payload)
    except lambda_client.exceptions.ResourceNotReadyException:
        lambda_client.get_waiter("function_active_v2").wait(
            FunctionName=function, WaiterConfig={"Delay": 10, "MaxAttempts": 60}
        )
        reply = lambda_client.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=payload)
    body = reply["Payload"].read()
    report = Report(deployment, url.rstrip("/"), model, key_source, ran_from=function)
    if reply.get("FunctionError"):
        # The handler failed outright (or Lambda stopped it): its error, without the stack trace.
        error = _json(body)
        kind = str(error.get("errorType") or reply["FunctionError"])
        message = str(error.get("errorMessage") or "the probe returned no report").splitlines()[0][:300]
        report.checks.append(Check("probe", False, 0.0, f"{kind}: {message}"))
        return report
    report.checks = _checks(_json(body).get("checks", []))
    if not report.checks:
        report.checks.append(Check("probe", False, 0.0, "the probe returned no checks"))
    return report


def _json(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class NotSmokeable(Exception):
    """The stack cannot be smoke-tested as asked (no endpoint output, no key where one is needed)."""


class NotDeployed(NotSmokeable):
    """The deployment has no stack yet (merged, not released to this environment): nothing to test."""


def deployed(stack: dict[str, Any] | None) -> bool:
    """Whether DescribeStacks shows a stack that was ever deployed: a CREATE change set not executed
    (yet) leaves an empty stack in REVIEW_IN_PROGRESS, which serves nothing.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-describing-stacks.html"""
    return stack is not None and stack.get("StackStatus") != "REVIEW_IN_PROGRESS"


def check_deployment(
    deployment: Any,
    *,
    key_mode: str = "secret",
    key_env: str | None = None,
    url: str | None = None,
    retries: int = 1,
) -> Report:
    """Smoke-test one deployed deployment (a valid `repository.DeploymentFile`) the way its clients reach it.

    `key_mode`: "secret" reads the stack's API key (AWSCURRENT) from Secrets Manager, "env" reads it from
    the environment variable `key_env`, "none" sends no key (the refused-key check then is skipped).
    A stack with a SmokeProbeFunction output (an internal load balancer) is checked by that function,
    unless `url` says where this process reaches the endpoint itself.
    """
    import os  # noqa: PLC0415

    from tooling import aws, keys  # noqa: PLC0415
    from tooling import cloudformation as cf  # noqa: PLC0415

    spec = deployment.spec
    stack = cf.describe(aws.client("cloudformation", spec.region), deployment.stack_name)
    if not deployed(stack):
        raise NotDeployed(f"{deployment.stack_name}: not deployed in {spec.region}")
    outputs = cf.outputs_of(stack)
    endpoint = url or outputs.get("EndpointUrl")
    if not endpoint:
        raise NotSmokeable(f"{deployment.stack_name}: no EndpointUrl output; pass --url")
    key, source = None, "none (auth.api_keys: false)"
    if spec.auth.api_keys and key_mode == "env":
        if not key_env or not os.environ.get(key_env):
            raise NotSmokeable(f"${key_env} is empty")
        key, source = os.environ[key_env], f"${key_env}"
    elif spec.auth.api_keys and key_mode == "secret":
        secret = outputs.get("ApiKeySecretArn")
        if not secret:
            raise NotSmokeable(f"{deployment.stack_name}: no ApiKeySecretArn output")
        key, source = keys.key(secret, spec.region), "Secrets Manager AWSCURRENT"
    name = f"{deployment.environment}/{deployment.name}"
    arguments = {"key_source": source, "images": "image" in spec.model.modalities, "retries": retries}
    function = None if url else outputs.get(PROBE_OUTPUT)
    if function:
        client = aws.single_attempt_client("lambda", spec.region, read_timeout=INVOKE_READ_TIMEOUT_SECONDS)
        return run_in_probe(client, function, name, endpoint, spec.model.served_model_name, key, **arguments)
    return run(name, endpoint, spec.model.served_model_name, key, **arguments)


def failed_report(deployment: str, detail: str) -> Report:
    """A deployment that could not be tested at all, reported as one failed check beside the others."""
    report = Report(deployment, "", "", "none")
    report.checks.append(Check("setup", False, 0.0, detail))
    return report


def to_markdown(reports: list[Report], skipped: list[tuple[str, str]] | None = None) -> str:
    """The table of checks; `skipped` (deployment, why) are the deployments not tested, one row each."""
    lines = ["| deployment | check | result | seconds | first token | detail |", "|---|---|---|---|---|---|"]
    for deployment, why in skipped or []:
        reason = why.replace("|", "\\|")
        lines.append(f"| {deployment} | | ⏭️ skipped | | | {reason} |")
    for report in reports:
        for check in report.checks:
            first = f"{check.first_token_seconds:.3f}" if check.first_token_seconds is not None else ""
            mark = "✅" if check.ok else "❌"
            detail = check.detail.replace("|", "\\|")
            lines.append(
                f"| {report.deployment} | {check.name} | {mark} | {check.seconds:.3f} | {first} | {detail} |"
            )
    return "\n".join(lines) + "\n"
