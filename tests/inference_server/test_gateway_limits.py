"""Limits: body size (413), per-key requests per minute and concurrency (429 with retry-after)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, running, settings_for

from inference_server.errors import GatewayError
from inference_server.limits import KeyLimits


def test_body_over_the_limit_is_413(upstream: FakeUpstream) -> None:
    with running(settings_for(upstream.url, max_body_bytes=2048)) as gateway:
        client = gateway.client()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 1000}])
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 4000}])
        assert caught.value.status_code == 413
        assert caught.value.body["code"] == "request_too_large"  # type: ignore[index]

        # Without a Content-Length (chunked upload) the limit holds while reading.
        def chunks() -> Iterator[bytes]:
            for _ in range(8):
                yield b" " * 1024

        with httpx.Client(timeout=10) as http:
            response = http.post(
                gateway.url + "/v1/chat/completions",
                content=chunks(),
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_requests_per_minute_is_429_with_retry_after(upstream: FakeUpstream) -> None:
    with running(settings_for(upstream.url, rpm_per_key=3)) as gateway:
        client = gateway.client()
        for _ in range(3):
            client.models.list()
        with pytest.raises(openai.RateLimitError) as caught:
            client.models.list()
        assert int(caught.value.response.headers["retry-after"]) >= 1
        assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


def test_concurrent_requests_per_key_is_429(fresh_upstream: FakeUpstream) -> None:
    with running(settings_for(fresh_upstream.url, concurrency_per_key=1)) as gateway:
        client = gateway.client()
        held = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body={"fake_hold": True},
        )
        try:
            assert fresh_upstream.holding.wait(10)
            with pytest.raises(openai.RateLimitError) as caught:
                client.models.list()
            assert caught.value.response.headers["retry-after"] == "1"
            assert caught.value.body["code"] == "concurrency_limit_exceeded"  # type: ignore[index]
        finally:
            held.close()
        # Once the stream is gone the slot is free again.
        assert fresh_upstream.aborted.wait(10)
        done = threading.Event()
        for _ in range(200):
            try:
                client.models.list()
                done.set()
                break
            except openai.RateLimitError:
                done.wait(0.02)
        assert done.is_set()


def test_key_limits_unit() -> None:
    limits = KeyLimits(rpm=2, concurrency=2)
    limits.acquire("a")
    limits.acquire("a")
    with pytest.raises(GatewayError) as caught:
        limits.acquire("a")
    assert caught.value.status == 429
    limits.acquire("b")  # another key has its own budget
    limits.release("a")
    limits.release("a")
    unlimited = KeyLimits(rpm=0, concurrency=0)
    for _ in range(1000):
        unlimited.acquire("a")
