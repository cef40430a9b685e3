"""The gateway's own upstream client: keep-alive reuse, reply framings, stale and broken connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from gateway_fake_upstream import refusing_port

from inference_server.httpclient import ConnectFailed, Pool, ReplyBroken

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _with_server(handler: Handler, body: Callable[[Pool], Awaitable[None]]) -> list[int]:
    """Runs `body` against a raw server on 127.0.0.1; returns how many connections it accepted."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool(f"http://127.0.0.1:{port}/v1", connect_timeout=5)
    try:
        await body(pool)
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
    return accepted


async def _request(pool: Pool, path: bytes = b"/v1/models") -> tuple[int, bytes, bool]:
    connection = await pool.acquire()
    connection.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    await connection.wait_headers()
    data = await connection.read()
    status = connection.status
    reusable = connection.keep_alive
    pool.release(connection)
    return status, data, reusable


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def test_keep_alive_connections_are_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def body(pool: Pool) -> None:
        for _ in range(3):
            assert await _request(pool) == (200, b"ok", True)

    assert len(asyncio.run(_with_server(handler, body))) == 1


def test_chunked_and_close_delimited_replies() -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nuntil the end",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while replies:
            await _read_request(reader)
            writer.write(replies.pop(0))
            await writer.drain()

    async def body(pool: Pool) -> None:
        assert await _request(pool) == (200, b"abcde", True)
        status, data, reusable = await _request(pool)
        assert (status, data, reusable) == (201, b"until the end", False)

    asyncio.run(_with_server(handler, body))


def test_a_connection_closed_by_the_server_while_idle_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # then the server drops the kept-alive connection, as an engine's idle timeout does

    async def body(pool: Pool) -> None:
        first = await pool.acquire()
        assert first.transport is not None
        first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await first.wait_headers()
        assert await first.read() == b"ok"
        pool.release(first)
        # Wait for the server's FIN to reach the pooled connection: that is what must be detected.
        async with asyncio.timeout(10):
            while not first.closed:
                await asyncio.sleep(0.005)
        assert await _request(pool) == (200, b"ok", True)

    assert len(asyncio.run(_with_server(handler, body))) == 2


def test_a_reply_cut_mid_body_is_broken_and_an_unfinished_one_is_not_pooled() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()

    async def body(pool: Pool) -> None:
        connection = await pool.acquire()
        assert connection.transport is not None
        connection.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await connection.wait_headers()
        assert await connection.next_chunk() == b"short"
        with pytest.raises(ReplyBroken):
            await connection.next_chunk()
        pool.release(connection)
        assert connection.closed

    asyncio.run(_with_server(handler, body))


def test_refused_connection_and_bad_urls() -> None:
    async def body(port: int) -> None:
        with pytest.raises(ConnectFailed):
            await Pool(f"http://127.0.0.1:{port}/v1", connect_timeout=2).acquire()

    with refusing_port() as port:
        asyncio.run(body(port))
    for url in ("ftp://host/v1", "http:///v1", "127.0.0.1:8000/v1"):
        with pytest.raises(ValueError, match="http"):
            Pool(url, connect_timeout=1)
    https = Pool("https://api.example.com/v1/", connect_timeout=1)
    assert (https.port, https.prefix, https.host_header) == (443, "/v1", b"api.example.com")
    assert Pool("http://127.0.0.1:8000/v1", connect_timeout=1).host_header == b"127.0.0.1:8000"
