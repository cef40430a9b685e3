"""Issue 13's small defects, each against the gateway on uvicorn with the `openai` client as caller."""

from __future__ import annotations

import asyncio
import base64
import socket
import time

import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, RunningGateway, running, settings_for

from inference_server.app import build_gateway
from inference_server.auth import KeyStore
from inference_server.config import Settings, load

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def test_no_limit_applies_unless_configured(upstream: FakeUpstream) -> None:
    # 600 requests a minute and 64 in flight per task used to apply to every client together.
    assert Settings().rpm_per_key == 0
    assert Settings().concurrency_per_key == 0
    gateway = build_gateway(settings_for(upstream.url))
    for _ in range(2000):
        gateway.limits.acquire("one-key")


def test_keep_alive_is_longer_than_the_load_balancers_idle_timeout() -> None:
    assert load([], {}).keep_alive_timeout == 605
    assert load([], {"GATEWAY_KEEP_ALIVE_TIMEOUT": "905"}).keep_alive_timeout == 905


def test_keep_alive_reaches_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from inference_server import __main__ as entry

    seen: dict[str, object] = {}

    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            seen["keep_alive"] = config.timeout_keep_alive

        def run(self) -> None:
            pass

    monkeypatch.setattr(entry.uvicorn, "Server", Server)
    monkeypatch.setenv("GATEWAY_KEEP_ALIVE_TIMEOUT", "605")
    entry.main(["--api-keys", KEY, "--port", "0"])
    assert seen["keep_alive"] == 605


def test_models_retrieve(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    client = gateway.client()
    assert client.models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_image_url_with_an_invalid_port_is_400(upstream: FakeUpstream) -> None:
    with (
        running(settings_for(upstream.url, image_domains=("example.com",))) as gateway,
        pytest.raises(openai.BadRequestError),
    ):
        gateway.client().chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://example.com:99999/a"}}],
                }
            ],
        )


def test_upper_case_data_url_media_type_is_accepted(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:IMAGE/PNG;base64," + PNG}}]
    reply = gateway.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}]
    )
    assert reply.choices


def test_a_body_with_a_utf8_bom_is_accepted(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    body = b'\xef\xbb\xbf{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert fresh_upstream.seen[-1].body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_bearer_with_a_tab_is_accepted(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    response = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer\t{KEY}"}, timeout=10)
    assert response.status_code == 200


def test_alias_mode_never_shows_the_upstream_model(fresh_upstream: FakeUpstream) -> None:
    settings = settings_for(fresh_upstream.url, served_model="our-model", upstream_model="provider-secret-x")
    with running(settings) as gateway:
        client = gateway.client()
        reply = client.chat.completions.with_raw_response.create(
            model="our-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert b"provider-secret-x" not in reply.http_response.content
        assert reply.parse().model == "our-model"
        with httpx.Client(timeout=10) as http:
            streamed = http.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY}"},
                json={"model": "our-model", "messages": [], "stream": True, "fake_chunks": 3},
            )
            failed = http.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY}"},
                json={"model": "our-model", "messages": [], "fake_status": 400, "fake_echo_model": True},
            )
        assert "provider-secret-x" not in streamed.text
        assert '"model":"our-model"' in streamed.text
        assert "provider-secret-x" not in failed.text
        assert [m.id for m in client.models.list().data] == ["our-model"]
        assert client.models.retrieve("our-model").id == "our-model"
        assert fresh_upstream.seen[-1].body["model"] == "provider-secret-x"  # type: ignore[index]


def test_a_seed_above_64_bits_stays_an_integer(fresh_upstream: FakeUpstream) -> None:
    big = 2**64 + 12345
    body = b'{"model": "our-model", "messages": [], "seed": %d}' % big
    settings = settings_for(fresh_upstream.url, served_model="our-model", upstream_model="provider-x")
    with running(settings) as gateway, running(settings_for(fresh_upstream.url)) as plain:
        for target in (gateway, plain):
            fresh_upstream.reset()
            response = httpx.post(
                target.url + "/v1/chat/completions",
                content=body,
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                timeout=10,
            )
            # Either passed through exactly, or refused as vLLM would refuse it: never a float.
            if response.status_code == 200:
                assert fresh_upstream.seen[-1].raw is not None
                assert b"%d" % big in fresh_upstream.seen[-1].raw
            else:
                assert response.status_code == 400, response.text
                assert response.json()["error"]["param"] == "seed"


def test_unknown_keys_are_refused_at_once() -> None:
    calls: list[int] = []

    def fetch() -> list[str]:
        calls.append(1)
        return ["sk-known"]

    async def scenario() -> None:
        store = KeyStore((), fetch, refresh_interval=3600, min_refresh_interval=5)
        await store.start()
        started = time.monotonic()
        for _ in range(20):
            assert await store.check("sk-unknown") is None
        assert time.monotonic() - started < 0.5
        # Still rate-limited: unknown keys do not hammer Secrets Manager.
        assert len(calls) == 1
        assert await store.check("sk-known")
        await store.close()

    asyncio.run(scenario())


def test_an_unfinished_huge_header_is_refused_early(upstream: FakeUpstream) -> None:
    with running(settings_for(upstream.url, max_header_bytes=16 * 1024)) as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ")
            refused = False
            sent = 0
            try:
                while sent < 48 * 1024 * 1024:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                refused = True
            assert refused or sent < 48 * 1024 * 1024
            assert sent <= 4 * 1024 * 1024, f"{sent} bytes accepted before the refusal"
        # Headers within the limit still work.
        response = httpx.get(
            gateway.url + "/v1/models",
            headers={"Authorization": f"Bearer {KEY}", "X-Fine": "b" * 8000},
            timeout=10,
        )
        assert response.status_code == 200
