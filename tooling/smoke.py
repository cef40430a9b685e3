"""Smoke tests of a live endpoint, the way a client sees it: the official `openai` SDK against its URL.

Health, the model list, a chat completion, a streamed one (with its time to first token), a request
without a valid key refused with 401, and an image when the model takes images. The key is never
printed: the report names where it came from, not what it is.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# A 1×1 PNG: the smallest image every vision model accepts, so the check costs one token of vision.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5"
    "ErkJggg=="
)
PROMPT = [{"role": "user", "content": "Reply with the single word: ready"}]


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

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _timed(report: Report, name: str, action: Callable[[], str | tuple[str, float]]) -> None:
    started = time.perf_counter()
    try:
        outcome = action()
        detail, first = outcome if isinstance(outcome, tuple) else (outcome, None)
        report.checks.append(Check(name, True, time.perf_counter() - started, detail, first))
    except Exception as exc:
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        report.checks.append(
            Check(name, False, time.perf_counter() - started, f"{type(exc).__name__}: {message}")
        )


def run(
    deployment: str,
    url: str,
    model: str,
    key: str | None,
    *,
    key_source: str,
    images: bool,
    timeout: float = 120.0,
    retries: int = 1,
) -> Report:
    """Smoke-test `url` (the endpoint, without /v1). `key` None: the endpoint takes no key."""
    from openai import AuthenticationError, OpenAI  # noqa: PLC0415 - only smoke tests need the SDK

    base = url.rstrip("/")
    report = Report(deployment, base, model, key_source)
    client = OpenAI(base_url=f"{base}/v1", api_key=key or "no-key", timeout=timeout, max_retries=retries)

    def health() -> str:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as reply:  # noqa: S310 - our endpoint
            return f"HTTP {reply.status}"

    def models() -> str:
        names = [m.id for m in client.models.list()]
        if model not in names:
            raise AssertionError(f"{model} not among {names}")
        return ", ".join(names)

    def chat() -> str:
        reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=8, temperature=0)
        text = reply.choices[0].message.content or ""
        if not text.strip():
            raise AssertionError("an empty answer")
        return repr(text.strip()[:40])

    def stream() -> tuple[str, float]:
        started = time.perf_counter()
        first, chunks, text = None, 0, ""
        for chunk in client.chat.completions.create(
            model=model, messages=PROMPT, max_tokens=8, temperature=0, stream=True
        ):
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                first = first if first is not None else time.perf_counter() - started
                text += delta
            chunks += 1
        if first is None:
            raise AssertionError("the stream carried no content")
        return f"{chunks} chunks: {text.strip()[:40]!r}", first

    def refused() -> str:
        stranger = OpenAI(base_url=f"{base}/v1", api_key="sk-not-a-key-of-this-endpoint", max_retries=0)
        try:
            stranger.models.list()
        except AuthenticationError:
            return "HTTP 401 without a valid key"
        raise AssertionError("a request without a valid key was served")

    def image() -> str:
        content = [{"type": "text", "text": "What colour is this pixel? One word."},
                   {"type": "image_url", "image_url": {"url": PIXEL}}]  # fmt: skip
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}], max_tokens=8
        )
        return repr((reply.choices[0].message.content or "").strip()[:40])

    _timed(report, "health", health)
    _timed(report, "models", models)
    _timed(report, "chat", chat)
    _timed(report, "stream", stream)
    if key is not None:
        _timed(report, "unauthorised", refused)
    if images:
        _timed(report, "image", image)
    return report


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
    return run(
        f"{deployment.environment}/{deployment.name}",
        endpoint,
        spec.model.served_model_name,
        key,
        key_source=source,
        images="image" in spec.model.modalities,
        retries=retries,
    )


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
