"""The OpenAI API through the gateway, driven by the official `openai` client."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, RunningGateway


def test_chat_completion(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    reply = gateway.client().chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], extra_body={"fake_chunks": 3}
    )
    assert reply.choices[0].message.content == "tok0 tok1 tok2 "
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


def test_unknown_vendor_fields_pass_through_untouched(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    extra = {"top_k": 20, "repetition_penalty": 1.1, "guided_json": {"type": "object"}, "min_p": 0.05}
    gateway.client().chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], extra_body=extra
    )
    body = fresh_upstream.seen[-1].body
    assert body is not None
    for name, value in extra.items():
        assert body[name] == value


def test_stream_arrives_chunk_by_chunk(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    stream = gateway.client().chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"fake_chunks": 5},
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices]
    assert pieces == [f"tok{i} " for i in range(5)]


def test_stream_is_not_compressed_and_not_cached(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}", "Accept-Encoding": "gzip"},
            json={"model": "m", "messages": [], "stream": True},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.endswith("data: [DONE]\n\n")


def test_completions_embeddings_and_models(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    client = gateway.client()
    completion = client.completions.create(model="fake-model", prompt="hello")
    assert completion.choices[0].text == " world"
    embeddings = client.embeddings.create(model="fake-model", input=["a", "b"])
    assert [e.index for e in embeddings.data] == [0, 1]
    assert embeddings.data[1].embedding == [0.25, -0.5, 1.0]
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]


def test_request_id_is_propagated_upstream_and_returned(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "abc-123"},
    )
    assert raw.headers["x-request-id"] == "abc-123"
    assert fresh_upstream.seen[-1].headers["x-request-id"] == "abc-123"
    # The client's key is the gateway's business: it never reaches the engine.
    assert "authorization" not in fresh_upstream.seen[-1].headers


def test_request_id_is_made_when_missing_or_unsafe(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(
            gateway.url + "/v1/models",
            headers={"Authorization": f"Bearer {KEY}", "x-request-id": "bad id\twith spaces"},
        )
        missing = client.get(gateway.url + "/nope")
    assert response.status_code == 200
    made = response.headers["x-request-id"]
    assert made != "bad id\twith spaces"
    assert len(made) == 24
    assert fresh_upstream.seen[-1].headers["x-request-id"] == made
    assert missing.status_code == 404
    assert missing.headers["x-request-id"]


def test_upstream_error_is_normalised_to_openai_shape(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], extra_body={"fake_status": 400}
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["message"] == "fake error 400"
    assert error["code"] is None  # vLLM's numeric 400 is not an OpenAI code
    assert set(error) == {"message", "type", "param", "code"}


def test_upstream_server_error_becomes_502(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [], "fake_status": 500},
        )
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "fake error 500"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v2/nothing", None, 404),
        ("GET", "/v1/chat/completions", None, 405),
        ("POST", "/v1/chat/completions", b"{not json", 400),
        ("POST", "/v1/chat/completions", b"[1, 2]", 422),
        ("POST", "/invocations", b"{}", 404),  # the SageMaker contract is off outside SageMaker
    ],
)
def test_gateway_errors_have_openai_shape(
    gateway: RunningGateway, method: str, path: str, body: bytes | None, status: int
) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.request(
            method, gateway.url + path, content=body, headers={"Authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]


def test_health_ready_and_metrics(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    gateway.client().chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    with httpx.Client(timeout=10) as client:
        assert client.get(gateway.url + "/health").json() == {"status": "ok"}
        assert client.get(gateway.url + "/ready").status_code == 200
        # /metrics has its own port, which the load balancer does not forward.
        assert client.get(gateway.url + "/metrics").status_code == 404
        metrics = client.get(gateway.metrics_url).text
    assert 'gateway_requests_total{route="/chat/completions",status="200"}' in metrics
    for name in (
        "gateway_request_seconds_bucket",
        "gateway_overhead_seconds_bucket",
        "gateway_requests_in_flight",
        "gateway_tokens_total",
    ):
        assert name in metrics


def test_access_log_is_one_json_line_per_request_without_the_key(
    gateway: RunningGateway, fresh_upstream: FakeUpstream, gateway_log: Path
) -> None:
    gateway.client().chat.completions.create(
        model="logged-model",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "log-1"},
    )
    # The line is written just after the response's last byte: wait for it rather than race it.
    pause = threading.Event()
    mine: list[dict[str, object]] = []
    for _ in range(500):
        mine = [
            e for e in map(orjson.loads, gateway_log.read_bytes().splitlines()) if e["request_id"] == "log-1"
        ]
        if mine:
            break
        pause.wait(0.01)
    assert len(mine) == 1
    entry = mine[0]
    assert entry["model"] == "logged-model"
    assert entry["status"] == 200
    assert entry["path"] == "/v1/chat/completions"
    assert entry["completion_tokens"] == 4
    assert entry["prompt_tokens"] == 7
    assert isinstance(entry["latency_ms"], float)
    assert entry["latency_ms"] > 0
    assert entry["key_id"]
    assert KEY.encode() not in gateway_log.read_bytes()
