"""The upstream down, slow or failing mid-stream; a client that leaves cancels the upstream request."""

from __future__ import annotations

import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream, refusing_port
from gateway_support import KEY, RunningGateway, running, settings_for


def test_upstream_down_is_503_with_retry_after() -> None:
    with (
        refusing_port() as port,
        running(settings_for(f"http://127.0.0.1:{port}/v1", connect_retries=2)) as gateway,
    ):
        with pytest.raises(openai.InternalServerError) as caught:
            gateway.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503
        assert caught.value.response.headers["retry-after"] == "5"
        assert caught.value.body["code"] == "upstream_connect"  # type: ignore[index]
        with httpx.Client(timeout=10) as http:
            ready = http.get(gateway.url + "/ready")
            metrics = http.get(gateway.metrics_url).text
        assert ready.status_code == 503
        assert ready.headers["retry-after"]
        assert 'gateway_upstream_errors_total{kind="connect"} 1.0' in metrics


def test_slow_upstream_is_504(fresh_upstream: FakeUpstream) -> None:
    with running(settings_for(fresh_upstream.url, first_byte_timeout=0.3)) as gateway:
        with pytest.raises(openai.APIStatusError) as caught:
            gateway.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"fake_delay": 3}
            )
        assert caught.value.status_code == 504
        assert caught.value.body["type"] == "timeout_error"  # type: ignore[index]
        # Nothing may be retried once the request reached the upstream: it saw it exactly once.
        assert len([s for s in fresh_upstream.seen if s.path == "/v1/chat/completions"]) == 1


def test_no_read_timeout_on_a_live_stream(fresh_upstream: FakeUpstream) -> None:
    # Chunks 0.2 s apart for 1.2 s: longer than the first-byte timeout, which must not apply.
    with running(settings_for(fresh_upstream.url, first_byte_timeout=0.5)) as gateway:
        stream = gateway.client().chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body={"fake_chunks": 6, "fake_interval": 0.2},
        )
        assert len([c for c in stream if c.choices]) == 6


def test_keepalive_comments_while_the_upstream_is_silent(fresh_upstream: FakeUpstream) -> None:
    with running(settings_for(fresh_upstream.url, keepalive_interval=0.1)) as gateway:
        with httpx.Client(timeout=10) as http:
            response = http.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY}"},
                json={"model": "m", "messages": [], "stream": True, "fake_chunks": 2, "fake_interval": 0.5},
            )
        text = response.text
        assert ": keep-alive\n\n" in text
        # Comments sit between events, never inside one.
        events = [e for e in text.split("\n\n") if e]
        assert all(e.startswith(("data: ", ": keep-alive")) for e in events)
        assert text.endswith("data: [DONE]\n\n")
        # The SDK ignores comments.
        stream = gateway.client().chat.completions.create(
            model="m", messages=[], stream=True, extra_body={"fake_chunks": 2, "fake_interval": 0.3}
        )
        assert [c.choices[0].delta.content for c in stream if c.choices] == ["tok0 ", "tok1 "]


def test_upstream_failing_mid_stream_becomes_an_error_event(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    stream = gateway.client().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"fake_chunks": 5, "fake_fail_after": 2},
    )
    received = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as caught:
        consume()
    assert received == ["tok0 ", "tok1 "]
    assert "closed the stream early" in caught.value.message
    with httpx.Client(timeout=10) as http:
        response = http.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [], "stream": True, "fake_chunks": 5, "fake_fail_after": 1},
        )
    assert response.status_code == 200
    assert response.text.endswith('"code":"upstream_stream"}}\n\ndata: [DONE]\n\n')


def test_client_disconnect_cancels_the_upstream_request(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    stream = gateway.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, extra_body={"fake_hold": True}
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content == "tok0 "
    # The upstream sets `holding` just after writing the chunk the client already has: wait for it
    # (asserting it at once raced the upstream's thread).
    assert fresh_upstream.holding.wait(10)
    assert not fresh_upstream.aborted.is_set()
    stream.close()
    # The upstream sees its connection dropped: the engine would free the sequence's GPU slot.
    assert fresh_upstream.aborted.wait(10)


def test_client_disconnect_before_the_first_token_cancels_too(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    client = gateway.client(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"fake_delay": 30}
        )
    # A non-streamed request waiting on a slow generation is aborted upstream as well.
    assert fresh_upstream.aborted.wait(10)
    assert fresh_upstream.cancelled_requests == 1
