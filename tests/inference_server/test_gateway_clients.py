"""Per-client keys, limits and usage, end to end against moto (SSM parameter + Secrets Manager), with the
`openai` SDK as each client; and the EMF lines' structure as CloudWatch specifies it."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import openai
import orjson
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import RunningGateway, settings_for

from inference_server.app import build_gateway
from inference_server.clients import parse_clients
from inference_server.usage import NAMESPACE, UsageMetrics


def _eventually(check: Callable[[], bool], seconds: float = 15) -> bool:
    pause = threading.Event()
    for _ in range(int(seconds / 0.1)):
        if check():
            return True
        pause.wait(0.1)
    return False


@pytest.mark.slow
def test_two_clients_end_to_end(moto_endpoint: str, fresh_upstream: FakeUpstream, tmp_path: Path) -> None:
    ssm, secrets = boto3.client("ssm"), boto3.client("secretsmanager")
    suffix = uuid.uuid4().hex[:8]
    arns = {}
    for team in ("team-a", "team-b"):
        arns[team] = secrets.create_secret(Name=f"{team}-{suffix}", SecretString=f"sk-{team}-key")["ARN"]
    clients: list[dict[str, Any]] = [
        {"name": "team-a", "secret_arn": arns["team-a"], "requests_per_minute": 4},
        {"name": "team-b", "secret_arn": arns["team-b"], "concurrent_requests": 1, "tokens_per_minute": 20},
    ]
    parameter = f"/deployctl/{suffix}/clients"
    ssm.put_parameter(Name=parameter, Type="String", Value=orjson.dumps({"clients": clients}).decode())

    settings = settings_for(
        fresh_upstream.url, api_keys=(), clients_parameter=parameter, clients_refresh_interval=0.5
    )
    gateway = build_gateway(settings)
    usage_path = tmp_path / "usage.log"
    fd = os.open(usage_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    gateway.usage = UsageMetrics("stack-x", interval=3600, fd=fd)
    running = RunningGateway(gateway).start()
    try:
        a, b = running.client(api_key="sk-team-a-key"), running.client(api_key="sk-team-b-key")
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        # Each key works.
        assert a.models.list().data
        assert b.models.list().data
        # team-b's concurrency limit (1) applies to team-b only.
        held = b.chat.completions.create(**ask, stream=True, extra_body={"fake_hold": True})  # type: ignore[call-overload]
        try:
            assert fresh_upstream.holding.wait(10)
            with pytest.raises(openai.RateLimitError) as caught:
                b.models.list()
            assert caught.value.body["code"] == "concurrency_limit_exceeded"  # type: ignore[index]
            assert a.models.list().data
        finally:
            held.close()
        assert fresh_upstream.aborted.wait(10)
        # team-a's requests per minute (4) apply to team-a only.
        a.chat.completions.create(**ask)  # type: ignore[call-overload]
        a.chat.completions.create(**ask)  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as caught:
            a.models.list()
        assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
        # team-b's tokens per minute (20), counted from usage: 7 + 4 a request.
        assert _eventually(lambda: _try(b.models.list))
        b.chat.completions.create(**ask, extra_body={"fake_chunks": 4})  # type: ignore[call-overload]
        b.chat.completions.create(**ask, extra_body={"fake_chunks": 4})  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as caught:
            b.chat.completions.create(**ask)  # type: ignore[call-overload]
        assert caught.value.body["code"] == "token_rate_limit_exceeded"  # type: ignore[index]

        # Revoking team-a (removed from the parameter) stops its key within the refresh; team-b's
        # key still authenticates (it is only out of tokens).
        ssm.put_parameter(
            Name=parameter,
            Type="String",
            Overwrite=True,
            Value=orjson.dumps({"clients": clients[1:]}).decode(),
        )
        assert _eventually(lambda: _status(a.models.list) == 401)
        assert _status(b.models.list) == 429

        # A client whose secret can no longer be read is dropped too (fail closed).
        secrets.delete_secret(SecretId=arns["team-b"], ForceDeleteWithoutRecovery=True)
        assert _eventually(lambda: _status(b.models.list) == 401)
    finally:
        running.stop()
        os.close(fd)

    # Usage per client, aggregated: one EMF line per client per flush, not one per request.
    lines = [orjson.loads(line) for line in usage_path.read_text().splitlines()]
    by_client = {line["Client"]: line for line in lines}
    assert len(lines) == 2
    # 4 admitted, then 429s until the revocation took effect (401s name no client).
    assert by_client["team-a"]["Requests"] >= 5
    assert by_client["team-a"]["Errors"] == by_client["team-a"]["Requests"] - 4
    assert by_client["team-b"]["PromptTokens"] == 14
    assert by_client["team-b"]["CompletionTokens"] == 8
    assert all(line["Stack"] == "stack-x" for line in lines)


def _try(call: Callable[[], Any]) -> bool:
    return _status(call) == 200


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_emf_lines_follow_the_specification() -> None:
    usage = UsageMetrics("stack-x", interval=60, fd=-1)
    for index in range(1000):
        usage.record("team-a", 200, 0.01 * (index % 7), 5, 3, False)
    usage.record("team-b", 502, 0.2, None, None, True)
    lines = [orjson.loads(line) for line in usage.lines()]
    assert len(lines) == 2
    for line in lines:
        aws = line["_aws"]
        assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000  # ms
        (directive,) = aws["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE == "deployctl/Gateway"
        assert directive["Dimensions"] == [["Stack"], ["Stack", "Client"]]
        for dimension in ("Stack", "Client"):
            assert isinstance(line[dimension], str)
        for metric in directive["Metrics"]:
            assert set(metric) == {"Name", "Unit"}
            value = line[metric["Name"]]
            assert isinstance(value, int | float) or (isinstance(value, list) and len(value) <= 100)
    team_a = next(line for line in lines if line["Client"] == "team-a")
    assert team_a["Requests"] == 1000 and team_a["PromptTokens"] == 5000
    assert len(team_a["Latency"]) == 100
    assert usage.lines() == []  # flushed: the next interval starts from zero


def test_malformed_client_entries_are_skipped() -> None:
    text = orjson.dumps(
        {
            "clients": [
                {"name": "ok", "secret_arn": "arn:1", "requests_per_minute": None},
                {"name": "bad name!", "secret_arn": "arn:2"},
                {"name": "neg", "secret_arn": "arn:3", "tokens_per_minute": -1},
                {"name": "ok", "secret_arn": "arn:4"},
            ]
        }
    ).decode()
    assert [name for name, _, _ in parse_clients(text)] == ["ok"]
