"""The pooled upstream client against real and raw servers: each message delimited, interim (1xx) and
unsolicited replies never desynchronise a connection, stale pooled connections are retried once,
and the upstream's response headers that matter reach the client (issue 13, items 2, 5 and 6)."""

from __future__ import annotations

import asyncio
import gzip
import threading

import httpx
import openai
import orjson
import pytest
from gateway_servers import (
    chat_app,
    completion,
    hypercorn_server,
    json_reply,
    raw_server,
    read_request,
    uvicorn_server,
)
from gateway_support import KEY, running, settings_for

MESSAGES = [{"role": "user", "content": "hi"}]


def _contents(gateway_url: str, count: int) -> list[str]:
    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=KEY, max_retries=0, timeout=10)
    return [
        client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content or ""
        for _ in range(count)
    ]  # type: ignore[arg-type]


def test_interim_1xx_replies_are_skipped_and_the_pool_stays_in_step() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        served = 0
        while True:
            await read_request(reader)
            served += 1
            # Each interim reply in its own packet, as a real server sends them while it works.
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(json_reply(completion(f"reply-{served}")))
            await writer.drain()

    with (
        raw_server(handler) as (port, connections),
        running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw,
    ):
        assert _contents(gw.url, 4) == ["reply-1", "reply-2", "reply-3", "reply-4"]
    assert len(connections) == 1  # kept alive and reused, in step


def test_an_unsolicited_extra_reply_is_never_given_to_the_next_request() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            await read_request(reader)
            # The first connection answers, then glues a second reply nobody asked for.
            writer.write(json_reply(completion(f"conn{number}")))
            if number == 1:
                writer.write(json_reply(completion("UNSOLICITED")))
            await writer.drain()

    with (
        raw_server(handler) as (port, connections),
        running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw,
    ):
        replies = _contents(gw.url, 3)
    assert "UNSOLICITED" not in replies
    assert replies[0] == "conn1"
    assert len(connections) == 2  # the misbehaving connection was dropped, never reused


def test_a_late_unsolicited_reply_on_an_idle_connection_drops_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            await read_request(reader)
            writer.write(json_reply(completion(f"conn{number}")))
            await writer.drain()
            if number == 1:
                await asyncio.sleep(0.1)
                writer.write(json_reply(completion("LATE")))
                await writer.drain()

    with (
        raw_server(handler) as (port, _connections),
        running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw,
    ):
        first = _contents(gw.url, 1)
        threading.Event().wait(0.4)
        second = _contents(gw.url, 1)
    assert first == ["conn1"]
    assert second == ["conn2"]


def test_a_pooled_connection_closed_silently_is_retried_once_on_a_fresh_one() -> None:
    seen: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        seen.append(number)
        writer.write(json_reply(completion(f"conn{number}")))
        await writer.drain()
        # The next request on this connection is read and dropped without a byte of reply, as an
        # upstream closing its idle keep-alive connection at that very moment does.
        await read_request(reader)
        seen.append(-number)

    settings = settings_for("http://127.0.0.1:1/v1")
    with (
        raw_server(handler) as (port, connections),
        running(settings_for(f"http://127.0.0.1:{port}/v1", upstream_idle_timeout=30)) as gw,
    ):
        assert _contents(gw.url, 3) == ["conn1", "conn2", "conn3"]
    assert settings.upstream_idle_timeout == 4.0  # the default, now a setting
    assert seen[:3] == [1, -1, 2]
    assert len(connections) >= 3


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_short_upstream_keep_alives_give_no_502(server: str) -> None:
    # gunicorn's default keep-alive is 2 s; ours would keep the connection for 30 s here.
    app = chat_app(lambda n: completion(f"r{n}"))
    context = (
        hypercorn_server(app, keep_alive=1) if server == "hypercorn" else uvicorn_server(app, keep_alive=1)
    )
    with (
        context as port,
        running(settings_for(f"http://127.0.0.1:{port}/v1", upstream_idle_timeout=30)) as gw,
    ):
        pause = threading.Event()
        results = []
        for _ in range(3):
            results += _contents(gw.url, 1)
            pause.wait(1.3)
    assert results == ["r1", "r2", "r3"]


def test_upstream_headers_that_matter_pass_and_hop_by_hop_ones_do_not() -> None:
    body = gzip.compress(completion("compressed"))
    headers = [
        (b"content-encoding", b"gzip"),
        (b"x-ratelimit-remaining-requests", b"99"),
        (b"x-ratelimit-limit-tokens", b"100000"),
        (b"x-request-id", b"req_upstream_1"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-authenticate", b"Basic"),
    ]
    with (
        hypercorn_server(chat_app(lambda _: body, headers)) as port,
        running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw,
    ):
        client = gw.client()
        raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.parse().choices[0].message.content == "compressed"
        got = raw.http_response.headers
    assert got["content-encoding"] == "gzip"
    assert got["x-ratelimit-remaining-requests"] == "99"
    assert got["x-ratelimit-limit-tokens"] == "100000"
    assert got["x-upstream-request-id"] == "req_upstream_1"
    assert got["x-request-id"] != "req_upstream_1"
    assert "keep-alive" not in got
    assert "proxy-authenticate" not in got


def test_the_providers_retry_after_reaches_the_client() -> None:
    error = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit_error", "code": None}})

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(
                json_reply(
                    error,
                    b"429 Too Many Requests",
                    b"Retry-After: 17\r\nx-ratelimit-remaining-requests: 0\r\n",
                )
            )
            await writer.drain()

    with (
        raw_server(handler) as (port, _),
        running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        gw.client().chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_an_upstream_url_with_a_port_out_of_range_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="port"), running(settings_for("http://127.0.0.1:99999/v1")):
        pass


def test_aiohttp_upstream_with_gzip_is_decoded_by_the_sdk() -> None:
    # The fake upstream is aiohttp: compress its reply as a provider behind a CDN would.
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        response = web.Response(body=completion("via aiohttp"), content_type="application/json")
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with running(settings_for(f"http://127.0.0.1:{port}/v1")) as gw:
            raw = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "m", "messages": MESSAGES},
                headers={"Authorization": f"Bearer {KEY}", "Accept-Encoding": "gzip"},
                timeout=10,
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert raw.status_code == 200
    assert raw.json()["choices"][0]["message"]["content"] == "via aiohttp"


def test_headers_named_by_connection_are_hop_by_hop_too() -> None:
    from inference_server.upstreams import pass_headers

    headers = [
        (b"content-type", b"application/json"),
        (b"connection", b"keep-alive, x-hop"),
        (b"x-hop", b"1"),
        (b"x-ratelimit-remaining-tokens", b"5"),
        (b"openai-organization", b"org-secret"),
    ]
    assert pass_headers(headers, external=True) == [(b"x-ratelimit-remaining-tokens", b"5")]
    assert (b"openai-organization", b"org-secret") in pass_headers(headers, external=False)
