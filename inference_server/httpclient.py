"""A lean HTTP/1.1 client for the upstream: asyncio protocol + httptools, pooled keep-alive connections.

It exists for speed. Every streamed token crosses this code, and aiohttp's general machinery (URL
objects, multidicts, its StreamReader with timers and flow-control bookkeeping) cost more per chunk
and per request than the whole gateway budget allows; see bench/gateway.py. It implements only what
an OpenAI upstream needs: one request per connection at a time, JSON or no body, content-length,
chunked or close-delimited replies, TLS, and pausing the upstream when a slow client falls behind.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from urllib.parse import urlsplit

import httptools

# Pause reading the upstream when this much is waiting for a slow client; resume below the low mark.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


class ConnectFailed(Exception):
    """Nothing was sent: the connection could not be made."""


class ConnectTimedOut(ConnectFailed):
    pass


class ReplyBroken(Exception):
    """The connection failed after the request was sent."""


class Connection(asyncio.Protocol):
    """One upstream connection; it carries one request and its reply at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.released_at = 0.0
        # Replies this connection has carried: a reused one (> 0) may have been closed by the
        # upstream while idle, which is safe to retry on a fresh connection if nothing came back.
        self.uses = 0
        self.reset()

    def reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.content_type = b"application/json"
        self.headers: list[tuple[bytes, bytes]] = []
        self._length_known = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.error: BaseException | None = None
        self.received = 0
        # One request at a time: bytes arriving when none is outstanding, or a second message after
        # the reply, are an upstream speaking out of turn; that connection is never reused.
        self.expecting = False
        self._in_message = False
        self._interim = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if not self.expecting:
            # An unsolicited reply on an idle connection: whatever it is, it belongs to no request.
            self.keep_alive = False
            self.close()
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ReplyBroken(f"the upstream's reply is not valid HTTP ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.complete:
            return
        if exc is None and self.headers_done and not self._length_known:
            # A reply delimited by the end of the connection ends here.
            self.complete = True
            self.keep_alive = False
            self._wake()
            return
        self._fail(ReplyBroken("the upstream closed the connection"))

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second reply glued to the first: the first is whole, the connection is not.
            self.keep_alive = False
            self.expecting = False
            return
        self._in_message = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.expecting:
            return
        lowered = name.lower()
        self.headers.append((lowered, value))
        if lowered == b"content-type":
            self.content_type = value
        elif lowered in (b"content-length", b"transfer-encoding"):
            self._length_known = True

    def on_headers_complete(self) -> None:
        if not self.expecting:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # 100 Continue, 103 Early Hints: interim replies with no body; the real one follows on
            # the same connection. (101 would switch protocols, which we never ask for.)
            if status == 101:
                self._fail(ReplyBroken("the upstream switched protocols"))
                self.keep_alive = False
                return
            self._interim = True
            self.headers = []
            self.content_type = b"application/json"
            self._length_known = False
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if not self.expecting or self._interim:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self._in_message = False
            return
        if not self.expecting or self.complete:
            return
        self.complete = True
        self._wake()

    # -- the reply --------------------------------------------------------------------------------

    def send(self, request: bytes) -> None:
        """Write one request; its reply is the next message this connection parses."""
        if self.transport is None or self.transport.is_closing():
            raise ReplyBroken("the connection closed before the request went out")
        self.expecting = True
        self.transport.write(request)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def wait_headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The next piece of the body, b"" at its end; cancelling the wait loses nothing."""
        while True:
            chunks = self._chunks
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            await self._wait()

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class Pool:
    """Keep-alive connections to one origin, newest first."""

    def __init__(self, base_url: str, *, connect_timeout: float, idle_timeout: float = 4.0) -> None:
        parts = urlsplit(base_url)
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise ValueError(f"the upstream URL's port is out of range: {base_url!r}") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"the upstream URL must be http(s)://host[:port]/path, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        authority = self.host if default_port else f"{self.host}:{self.port}"
        self.host_header = authority.encode("idna")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        # Below the upstream's keep-alive (uvicorn's 5 s for vLLM; GATEWAY_UPSTREAM_IDLE_TIMEOUT for
        # others): drop an idle connection before the upstream does. The race that remains (the
        # upstream closing as a request goes out) is retried once by the adapter.
        self._idle_timeout = idle_timeout
        self._idle: collections.deque[Connection] = collections.deque()

    async def acquire(self, *, fresh: bool = False) -> Connection:
        now = time.monotonic()
        idle = self._idle
        while idle and not fresh:
            connection = idle.pop()
            transport = connection.transport
            if (
                connection.closed
                or transport is None
                or transport.is_closing()
                or now - connection.released_at > self._idle_timeout
            ):
                connection.close()
                continue
            return connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise ConnectTimedOut("connecting to the upstream timed out") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to the upstream ({type(exc).__name__})") from exc
        return connection

    def release(self, connection: Connection) -> None:
        """Back to the pool if its reply was read to the end; otherwise closed (the upstream sees it)."""
        if (
            connection.complete
            and connection.keep_alive
            and connection.error is None
            and not connection.closed
        ):
            connection.reset()
            connection.uses += 1
            connection.released_at = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
