"""One interface, three adapters: vLLM on 127.0.0.1, an external OpenAI-compatible provider, SageMaker.

`vllm` and `external` share the OpenAI-over-HTTP adapter; `external` only adds the provider key,
read from Secrets Manager and never accepted from clients. `sagemaker` calls InvokeEndpoint (and
InvokeEndpointWithResponseStream to stream) with IAM, because SageMaker strips the Authorization
header; the OpenAI route travels in CustomAttributes so the container's /invocations can dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)

from inference_server.httpclient import ConnectFailed, Connection, ConnectTimedOut, Pool, ReplyBroken

_JSON = b"application/json"
log = logging.getLogger("inference_server.upstreams")


class UpstreamError(Exception):
    """The upstream could not be reached or broke its reply; `status` is what the client gets."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


class Reply(Protocol):
    status: int
    content_type: bytes
    # Upstream response headers worth passing on (lower-case names; hop-by-hop ones are dropped).
    headers: list[tuple[bytes, bytes]]

    async def read(self) -> bytes: ...

    async def next_chunk(self) -> bytes:
        """The next piece of the body as it arrives, b"" at the end; safe to cancel and call again."""
        ...

    def close(self) -> None: ...


class Upstream(Protocol):
    # Routes it can serve (OpenAI paths relative to /v1, or absolute for vLLM's root routes).
    supports: frozenset[str] | None

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        request_id: str,
        stream: bool,
        content_type: bytes = _JSON,
    ) -> Reply: ...

    async def ready(self) -> bool: ...


# ---------------------------------------------------------------------------------------------------
# OpenAI over HTTP (vllm, external)

# Hop-by-hop headers (RFC 9110 section 7.6.1) are the connection's, not the message's; content-length
# is recomputed, date and server are the gateway's own, x-request-id is ours (the upstream's is
# passed as x-upstream-request-id), set-cookie would pin clients to a provider's session.
_DROP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
        b"te", b"trailer", b"transfer-encoding", b"upgrade", b"content-length", b"content-type", b"date",
        b"server", b"set-cookie", b"x-request-id", b"alt-svc",
    }
)  # fmt: skip
# In external mode: which organisation or project holds the provider key is the provider's business.
_PROVIDER_PRIVATE = frozenset({b"openai-organization", b"openai-project", b"openai-version"})


def pass_headers(headers: list[tuple[bytes, bytes]], external: bool) -> list[tuple[bytes, bytes]]:
    named: set[bytes] = set()
    interesting = False
    for name, value in headers:
        if name == b"connection":
            named.update(part.strip().lower() for part in value.split(b","))
        elif name not in _DROP:
            interesting = True
    if not interesting:
        return []  # the common case: nothing but framing, date and content-type
    out = []
    for name, value in headers:
        if name in _DROP or name in named or (external and name in _PROVIDER_PRIVATE):
            if name == b"x-request-id":
                out.append((b"x-upstream-request-id", value))
            continue
        out.append((name, value))
    return out


class _HTTPReply:
    __slots__ = ("_connection", "_external", "_pool", "content_type", "status")

    def __init__(self, pool: Pool, connection: Connection, external: bool) -> None:
        self._pool = pool
        self._connection = connection
        self._external = external
        self.status = connection.status
        self.content_type = connection.content_type

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return pass_headers(self._connection.headers, self._external)

    async def read(self) -> bytes:
        try:
            return await self._connection.read()
        except ReplyBroken as exc:
            raise UpstreamError(502, "read", "the upstream closed the connection mid-reply") from exc

    async def next_chunk(self) -> bytes:
        # Cancelling this wait (keep-alive tick, client gone) loses nothing: chunks stay queued.
        try:
            return await self._connection.next_chunk()
        except ReplyBroken as exc:
            raise UpstreamError(502, "stream", "the upstream closed the stream early") from exc

    def close(self) -> None:
        # An unfinished reply closes its connection: that is how the engine learns the client left
        # and frees the sequence's GPU slot. A finished one goes back to the pool.
        self._pool.release(self._connection)


class ProviderKey:
    """The external provider's key, re-read from its secret on a schedule and after a provider 401,
    so a rotated key is picked up without a restart. Never logged."""

    def __init__(self, read: Callable[[], str], *, refresh_interval: float, rereadable: bool) -> None:
        self._read = read
        self._interval = refresh_interval
        self._rereadable = rereadable
        self.header = b""
        self._last = float("-inf")
        self._last_forced = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        key = await asyncio.to_thread(self._read)
        if any(c in key for c in "\r\n\0") or not key.isascii():
            raise ValueError("the provider key holds characters a header cannot carry")
        self.header = b"Authorization: Bearer " + key.encode() + b"\r\n"
        self._last = time.monotonic()

    async def start(self) -> None:
        await self.load()
        if self._rereadable and self._interval > 0:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.reload()

    async def reload(self, *, min_gap: float = 0.0) -> bool:
        """Read the key again (at most once per `min_gap` s); True if it changed."""
        if not self._rereadable:
            return False
        if min_gap:
            # Re-reads forced by provider 401s are rate-limited: a provider refusing every key must
            # not turn each request into a Secrets Manager call.
            if time.monotonic() - self._last_forced < min_gap:
                return False
            self._last_forced = time.monotonic()
        async with self._lock:
            before = self.header
            try:
                await self.load()
            except Exception as exc:  # keep the key we have; the provider will say if it is wrong
                log.warning("provider key refresh failed: %s", type(exc).__name__)
                self._last = time.monotonic()
                return False
            return self.header != before

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# vLLM serves these at its root, not under /v1.
ROOT_ROUTES = frozenset({"/tokenize", "/detokenize"})
# What an OpenAI-compatible provider offers; vLLM-only routes get a clear 404 in external mode.
EXTERNAL_ROUTES = frozenset(
    {"/chat/completions", "/completions", "/embeddings", "/models", "/responses", "/audio/transcriptions"}
)


class OpenAIHTTPUpstream:
    """vLLM on loopback, or an OpenAI-compatible provider over HTTPS (with the provider key)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        first_byte_timeout: float,
        connect_retries: int,
        provider_key: Callable[[], str] | None = None,
        idle_timeout: float = 4.0,
        provider_key_refresh_interval: float = 300.0,
        provider_key_rereadable: bool = True,
    ) -> None:
        self._pool = Pool(base_url, connect_timeout=connect_timeout, idle_timeout=idle_timeout)
        self._first_byte_timeout = first_byte_timeout
        self._retries = connect_retries
        self._key = (
            ProviderKey(
                provider_key,
                refresh_interval=provider_key_refresh_interval,
                rereadable=provider_key_rereadable,
            )
            if provider_key is not None
            else None
        )
        self.external = provider_key is not None
        self.supports: frozenset[str] | None = EXTERNAL_ROUTES if self.external else None
        self._heads: dict[tuple[str, str, bytes], bytes] = {}

    async def start(self) -> None:
        if self._key is not None:
            await self._key.start()

    async def close(self) -> None:
        self._pool.close()
        if self._key is not None:
            await self._key.close()

    def _head(self, method: str, path: str) -> bytes:
        # Built once per route and provider key: the request line and fixed headers never change.
        auth = self._key.header if self._key is not None else b""
        head = self._heads.get((method, path, auth))
        if head is None:
            if len(self._heads) > 64:
                self._heads.clear()
            prefix = "" if path in ROOT_ROUTES else self._pool.prefix
            head = self._heads[(method, path, auth)] = (
                f"{method} {prefix}{path} HTTP/1.1\r\n".encode()
                + b"Host: "
                + self._pool.host_header
                + b"\r\nAccept: application/json, text/event-stream\r\n"
                + auth
            )
        return head

    async def _connect(self, *, fresh: bool = False) -> Connection:
        attempt = 0
        while True:
            try:
                return await self._pool.acquire(fresh=fresh)
            except ConnectTimedOut as exc:
                raise UpstreamError(
                    504, "timeout", "the upstream did not accept a connection in time"
                ) from exc
            except ConnectFailed as exc:
                # Refused or unreachable: nothing reached the engine, so a retry cannot double work.
                if attempt >= self._retries:
                    raise UpstreamError(503, "connect", "the upstream is not reachable") from exc
                attempt += 1
                await asyncio.sleep(0.05 * 2**attempt)

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        request_id: str,
        stream: bool,
        content_type: bytes = _JSON,
    ) -> Reply:
        reply = await self._send(method, path, body, request_id, content_type)
        if reply.status == 401 and self._key is not None and await self._key.reload(min_gap=5.0):
            # The provider refused our key and the secret holds a new one: it was rotated.
            reply.close()
            reply = await self._send(method, path, body, request_id, content_type)
        return reply

    async def _send(
        self, method: str, path: str, body: bytes | None, request_id: str, content_type: bytes
    ) -> _HTTPReply:
        # request_id is safe in a header: the app accepts only [A-Za-z0-9._:-] or makes its own.
        request = self._head(method, path) + b"x-request-id: " + request_id.encode() + b"\r\n"
        if body is None:
            request += b"\r\n"
        else:
            request += b"Content-Type: %b\r\nContent-Length: %d\r\n\r\n%b" % (content_type, len(body), body)
        connection = await self._connect()
        retried = False
        while True:
            try:
                connection.send(request)
                async with asyncio.timeout(self._first_byte_timeout):
                    await connection.wait_headers()
            except TimeoutError as exc:
                connection.close()
                raise UpstreamError(504, "timeout", "the upstream did not answer in time") from exc
            except ReplyBroken as exc:
                connection.close()
                if connection.uses > 0 and connection.received == 0 and not retried:
                    # A pooled connection the upstream closed while idle (a short keep-alive, or a
                    # silent close): not a byte came back, so the request is retried once, fresh.
                    retried = True
                    connection = await self._connect(fresh=True)
                    continue
                raise UpstreamError(502, "protocol", "the upstream failed before replying") from exc
            except BaseException:
                connection.close()
                raise
            return _HTTPReply(self._pool, connection, self.external)

    async def ready(self) -> bool:
        if self._key is not None:
            # A provider's outage is not this task's: failing health checks for it would only make
            # the orchestrator replace healthy tasks, and each check would spend the provider key.
            return bool(self._key.header)
        try:
            reply = await self.send("GET", "/models", None, "ready", stream=False)
        except UpstreamError:
            return False
        try:
            await reply.read()
        except UpstreamError:
            return False
        finally:
            reply.close()
        return reply.status == 200


# ---------------------------------------------------------------------------------------------------
# SageMaker (IAM)


class _BufferedReply:
    __slots__ = ("_body", "content_type", "headers", "status")

    def __init__(self, status: int, content_type: bytes, body: bytes) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = status
        self.content_type = content_type
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def next_chunk(self) -> bytes:
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        pass


_END = object()


class _EventStreamReply:
    """Bridges botocore's blocking EventStream (read in a worker thread) to async chunks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor, stream: Any) -> None:
        self.status = 200
        self.content_type = b"text/event-stream"
        self.headers: list[tuple[bytes, bytes]] = []
        self._stream = stream
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = threading.Event()
        self._finished = False
        self._loop = loop
        executor.submit(self._pump)

    def _pump(self) -> None:
        put = partial(self._loop.call_soon_threadsafe, self._queue.put_nowait)
        try:
            for event in self._stream:
                if self._stop.is_set():
                    break
                if "PayloadPart" in event:
                    put(event["PayloadPart"].get("Bytes", b""))
                elif "ModelStreamError" in event:
                    detail = event["ModelStreamError"]
                    put(UpstreamError(502, "model_stream_error", str(detail.get("Message", "model error"))))
                    return
                elif "InternalStreamFailure" in event:
                    put(UpstreamError(502, "internal_stream_failure", "SageMaker's stream failed"))
                    return
        except EventStreamError as exc:
            # botocore raises the stream's modelled errors (ModelStreamError, InternalStreamFailure).
            error = exc.response.get("Error", {})
            modelled = error.get("Code") == "ModelStreamError"
            kind = "model_stream_error" if modelled else "internal_stream_failure"
            put(UpstreamError(502, kind, str(error.get("Message") or "the model failed mid-stream")))
            return
        except Exception as exc:
            if not self._stop.is_set():
                put(UpstreamError(502, "stream", f"the SageMaker stream broke ({type(exc).__name__})"))
            return
        finally:
            with contextlib.suppress(Exception):
                self._stream.close()
            with contextlib.suppress(RuntimeError):  # the loop is gone at interpreter exit
                put(_END)

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def next_chunk(self) -> bytes:
        while True:
            if self._finished:
                return b""
            item = await self._queue.get()
            if item is _END:
                self._finished = True
                return b""
            if isinstance(item, UpstreamError):
                self._finished = True
                raise item
            if item:
                return item

    def close(self) -> None:
        if not self._finished:
            self._stop.set()
            # Closing the HTTP body unblocks the reader thread and tells SageMaker we left.
            with contextlib.suppress(Exception):
                self._stream.close()


_SAGEMAKER_STATUS = {
    "ValidationError": 400,
    "ThrottlingException": 429,
    "ServiceUnavailable": 503,
    "ModelNotReadyException": 503,
    "InternalFailure": 502,
    "InternalDependencyException": 502,
}


class SageMakerUpstream:
    # What the container's /invocations dispatches (CustomAttributes route=...); multipart is not.
    supports: frozenset[str] | None = frozenset(
        {
            "/chat/completions", "/completions", "/embeddings", "/models", "/responses", "/tokenize",
            "/detokenize", "/rerank", "/score",
        }
    )  # fmt: skip
    external = False

    def __init__(
        self,
        endpoint: str,
        runtime_client: Callable[[], Any],
        control_client: Callable[[], Any] | None = None,
        *,
        max_threads: int = 64,
        ready_cache_seconds: float = 0.0,
    ) -> None:
        self._endpoint = endpoint
        # DescribeEndpoint is a control-plane call with a low TPS quota: its answer is reused.
        self._ready_cache = ready_cache_seconds
        self._ready_until = 0.0
        self._ready_value = False
        self._runtime_factory = runtime_client
        self._control_factory = control_client
        self._runtime: Any = None
        self._control: Any = None
        # Each streaming reply holds one thread while it lasts; the default executor's handful of
        # threads would cap concurrency far below what an endpoint serves.
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="sagemaker")

    async def start(self) -> None:
        self._runtime = await asyncio.to_thread(self._runtime_factory)
        if self._control_factory is not None:
            self._control = await asyncio.to_thread(self._control_factory)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _error(self, exc: Exception) -> UpstreamError | _BufferedReply:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ModelError":
                # The container answered with an error: pass its own status and body through.
                original = exc.response.get("OriginalStatusCode") or 502
                message = exc.response.get("OriginalMessage") or error.get("Message", "")
                return _BufferedReply(int(original), _JSON, str(message).encode())
            status = _SAGEMAKER_STATUS.get(
                code, exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            )
            if isinstance(status, int) and 400 <= status < 500:
                message = error.get("Message") or code
                return _BufferedReply(status, _JSON, str(message).encode())
            return UpstreamError(503 if status == 503 else 502, "sagemaker", f"SageMaker answered {code}")
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return UpstreamError(504, "timeout", "SageMaker did not answer in time")
        if isinstance(exc, EndpointConnectionError):
            return UpstreamError(503, "connect", "SageMaker is not reachable")
        return UpstreamError(502, "sagemaker", f"SageMaker call failed ({type(exc).__name__})")

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        request_id: str,
        stream: bool,
        content_type: bytes = _JSON,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        kwargs = {
            "EndpointName": self._endpoint,
            "Body": body or b"{}",
            "ContentType": "application/json",
            "CustomAttributes": f"route={path};request-id={request_id}",
        }
        try:
            if stream:
                result = await loop.run_in_executor(
                    self._executor, partial(self._runtime.invoke_endpoint_with_response_stream, **kwargs)
                )
                return _EventStreamReply(loop, self._executor, result["Body"])
            result = await loop.run_in_executor(
                self._executor, partial(self._runtime.invoke_endpoint, Accept="application/json", **kwargs)
            )
            data = await loop.run_in_executor(self._executor, result["Body"].read)
        except Exception as exc:
            outcome = self._error(exc)
            if isinstance(outcome, UpstreamError):
                raise outcome from exc
            return outcome
        return _BufferedReply(200, str(result.get("ContentType") or "application/json").encode(), data)

    async def ready(self) -> bool:
        if self._control is None:
            return self._runtime is not None
        now = time.monotonic()
        if now < self._ready_until:
            return self._ready_value
        try:
            described = await asyncio.to_thread(self._control.describe_endpoint, EndpointName=self._endpoint)
            value = described.get("EndpointStatus") == "InService"
        except Exception:
            value = False
        self._ready_value, self._ready_until = value, time.monotonic() + self._ready_cache
        return value
