"""Streams: a slow client is never cut by the keep-alive timer, a cut inside an event ends with an
error event the SDK raises as an APIError, CRLF-framed SSE gets keep-alives, and the access log
records what really happened (issue 13, items 4 and 9)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import openai
import orjson
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_servers import raw_server, read_request
from gateway_support import KEY, RunningGateway, running, settings_for

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _chunk(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


def _log_lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_backpressured_stream_is_not_cut_by_the_keep_alive(tmp_path: Path) -> None:
    events = 400
    payload = "x" * 16000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        for _ in range(events):
            writer.write(b"data: " + _chunk(payload) + b"\n\n")
            await writer.drain()
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()

    log = tmp_path / "access.log"
    with (
        raw_server(handler) as (port, _),
        running(settings_for(f"http://127.0.0.1:{port}/v1", keepalive_interval=0.2), log) as gateway,
    ):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gateway.port))
        body = b'{"model":"m","messages":[],"stream":true}'
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %b\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%b"
            % (KEY.encode(), len(body), body)
        )
        # The client stalls: the gateway blocks sending to it, for many keep-alive intervals.
        threading.Event().wait(2.0)
        received = bytearray()
        sock.settimeout(20)
        while chunk := sock.recv(1 << 20):
            received += chunk
        sock.close()
    assert received.count(b"data: {") == events
    assert b"data: [DONE]\n\n" in received
    assert received.endswith(b"0\r\n\r\n")  # the chunked reply's proper end, not a cut
    line = _log_lines(log)[-1]
    assert line["outcome"] == "complete"


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
def test_a_cut_inside_an_event_is_an_api_error_not_a_decode_error(framing: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        whole = b"data: " + _chunk("one") + b"\n\n"
        half = b'data: {"id":"c","object":"chat.completion.chunk","choi'
        if framing == "chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for piece in (whole, half):
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
            writer.transport.abort()
            return
        writer.write(SSE_HEAD + whole + half)
        await writer.drain()

    with raw_server(handler) as (port, _), running(settings_for(f"http://127.0.0.1:{port}/v1")) as gateway:
        stream = gateway.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        received: list[str | None] = []

        def consume() -> None:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content)

        with pytest.raises(openai.APIError) as caught:
            consume()
    assert received == ["one"]
    assert not isinstance(caught.value.__cause__, ValueError)
    assert "stream" in caught.value.message


def test_crlf_framed_streams_get_keep_alives() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        for word in ("a", "b", "c"):
            writer.write(b"data: " + _chunk(word) + b"\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.4)
        writer.write(b"data: [DONE]\r\n\r\n")
        await writer.drain()

    with (
        raw_server(handler) as (port, _),
        running(settings_for(f"http://127.0.0.1:{port}/v1", keepalive_interval=0.1)) as gateway,
    ):
        import httpx

        with httpx.Client(timeout=10) as http:
            text = http.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY}"},
                json={"model": "m", "messages": [], "stream": True},
            ).text
        assert text.count(": keep-alive") >= 2
        stream = gateway.client().chat.completions.create(model="m", messages=[], stream=True)
        assert [c.choices[0].delta.content for c in stream] == ["a", "b", "c"]


def test_an_upstream_cut_is_logged_as_such(fresh_upstream: FakeUpstream, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with running(settings_for(fresh_upstream.url), log) as gateway:
        stream = gateway.client().chat.completions.create(
            model="m", messages=[], stream=True, extra_body={"fake_chunks": 5, "fake_fail_after": 2}
        )
        with pytest.raises(openai.APIError):
            list(stream)
    line = _log_lines(log)[-1]
    assert line["status"] == 200
    assert line["outcome"] == "upstream_error"
    assert line["error"] == "upstream_stream"


def test_a_stream_cut_at_the_shutdown_grace_is_logged_as_such(
    fresh_upstream: FakeUpstream, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    received: list[bytes] = []
    with running(settings_for(fresh_upstream.url), log) as gateway:
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=20)
        body = b'{"model":"m","messages":[],"stream":true,"fake_hold":true}'
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %b\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (KEY.encode(), len(body), body)
        )
        assert fresh_upstream.holding.wait(10)
        reader = threading.Thread(target=lambda: received.extend(iter(lambda: sock.recv(65536), b"")))
        reader.start()
        # RunningGateway.stop: uvicorn drains for its grace (2 s), then cancels what is left.
    reader.join(20)
    sock.close()
    line = _log_lines(log)[-1]
    assert line["outcome"] == "cut_at_shutdown"
    assert b"shutting_down" in b"".join(received)


def test_usage_is_requested_upstream_and_hidden_from_a_client_that_did_not_ask(
    gateway: RunningGateway, fresh_upstream: FakeUpstream
) -> None:
    stream = gateway.client().chat.completions.create(
        model="m", messages=[], stream=True, extra_body={"fake_chunks": 3}
    )
    chunks = list(stream)
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert fresh_upstream.seen[-1].body["stream_options"] == {"include_usage": True}  # type: ignore[index]
    asked = gateway.client().chat.completions.create(
        model="m",
        messages=[],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"fake_chunks": 3},
    )
    usage = [c.usage for c in asked if c.usage is not None]
    assert usage and usage[0].completion_tokens == 3
