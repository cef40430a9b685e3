"""Real upstream servers for the gateway's tests, each in its own thread on 127.0.0.1.

- `raw_server`: an asyncio server whose handler writes bytes as it likes (1xx replies, replies
  nobody asked for, silent closes): the edge cases no framework would produce.
- `hypercorn_server` / `uvicorn_server`: an ASGI app behind the real servers, with their keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class _Thread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def raw_server(handler: RawHandler) -> Iterator[tuple[int, list[int]]]:
    """Yields (port, connections): `connections` grows by one per accepted connection."""
    runner = _Thread()
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer, len(connections))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start() -> asyncio.AbstractServer:
        return await asyncio.start_server(on_connect, "127.0.0.1", 0)

    server = runner.run(start())
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:

        async def close() -> None:
            server.close()

        # asyncio servers are not thread-safe: closed from their own loop.
        runner.run(close())
        runner.stop()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request (head and content-length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


def json_reply(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        + extra
        + b"\r\n"
        + body
    )  # fmt: skip


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def hypercorn_server(app: Any, *, keep_alive: float = 5.0) -> Iterator[int]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_timeout = keep_alive
    config.accesslog = None
    config.errorlog = None
    runner = _Thread()
    stop = asyncio.Event()
    future = asyncio.run_coroutine_threadsafe(serve(app, config, shutdown_trigger=stop.wait), runner.loop)  # type: ignore[arg-type]
    _wait_port(port)
    try:
        yield port
    finally:
        runner.loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            future.result(10)
        runner.stop()


@contextlib.contextmanager
def uvicorn_server(app: Any, *, keep_alive: int = 5) -> Iterator[int]:
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_keep_alive=keep_alive, lifespan="off"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    _wait_port(port)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _wait_port(port: int) -> None:
    pause = threading.Event()
    for _ in range(500):
        with contextlib.closing(socket.socket()) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        pause.wait(0.01)
    raise AssertionError(f"nothing listens on {port}")


def chat_app(answer: Callable[[int], bytes], headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    """A minimal ASGI OpenAI chat upstream: answers request N with `answer(N)`."""
    count = {"n": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        count["n"] += 1
        body = answer(count["n"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), *(headers or [])],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def completion(content: str, model: str = "m") -> bytes:
    import orjson

    return orjson.dumps(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
