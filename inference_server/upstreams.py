"""One interface, three adapters: vLLM on 127.0.0.1, an external OpenAI-compatible provider, SageMaker.

`vllm` and `external` share the OpenAI-over-HTTP adapter; `external` only adds the provider key,
read from Secrets Manager and never accepted from clients. `sagemaker` calls InvokeEndpoint (and
InvokeEndpointWithResponseStream to stream) with IAM, because SageMaker strips the Authorization
header; the OpenAI route travels in CustomAttributes so the container's /invocations can dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
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

    async def read(self) -> bytes: ...

    async def next_chunk(self) -> bytes:
        """The next piece of the body as it arrives, b"" at the end; safe to cancel and call again."""
        ...

    def close(self) -> None: ...


class Upstream(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(
        self, method: str, path: str, body: bytes | None, request_id: str, stream: bool
    ) -> Reply: ...

    async def ready(self) -> bool: ...


# ---------------------------------------------------------------------------------------------------
# OpenAI over HTTP (vllm, external)


class _HTTPReply:
    __slots__ = ("_connection", "_pool", "content_type", "status")

    def __init__(self, pool: Pool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.status = connection.status
        self.content_type = connection.content_type

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
    ) -> None:
        self._pool = Pool(base_url, connect_timeout=connect_timeout)
        self._first_byte_timeout = first_byte_timeout
        self._retries = connect_retries
        self._provider_key = provider_key
        self._heads: dict[tuple[str, str], bytes] = {}
        self._auth = b""

    async def start(self) -> None:
        if self._provider_key is not None:
            key = await asyncio.to_thread(self._provider_key)
            if any(c in key for c in "\r\n\0") or not key.isascii():
                raise ValueError("the provider key holds characters a header cannot carry")
            self._auth = b"Authorization: Bearer " + key.encode() + b"\r\n"

    async def close(self) -> None:
        self._pool.close()

    def _head(self, method: str, path: str) -> bytes:
        # Built once per route: the request line and fixed headers never change.
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[(method, path)] = (
                f"{method} {self._pool.prefix}{path} HTTP/1.1\r\n".encode()
                + b"Host: "
                + self._pool.host_header
                + b"\r\nAccept: application/json, text/event-stream\r\n"
                + self._auth
            )
        return head

    async def send(self, method: str, path: str, body: bytes | None, request_id: str, stream: bool) -> Reply:
        # request_id is safe in a header: the app accepts only [A-Za-z0-9._:-] or makes its own.
        request = self._head(method, path) + b"x-request-id: " + request_id.encode() + b"\r\n"
        if body is None:
            request += b"\r\n"
        else:
            request += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        attempt = 0
        while True:
            try:
                connection = await self._pool.acquire()
                break
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
        try:
            assert connection.transport is not None
            connection.transport.write(request)
            async with asyncio.timeout(self._first_byte_timeout):
                await connection.wait_headers()
        except TimeoutError as exc:
            connection.close()
            raise UpstreamError(504, "timeout", "the upstream did not answer in time") from exc
        except ReplyBroken as exc:
            connection.close()
            raise UpstreamError(502, "protocol", "the upstream failed before replying") from exc
        except BaseException:
            connection.close()
            raise
        return _HTTPReply(self._pool, connection)

    async def ready(self) -> bool:
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
    __slots__ = ("_body", "content_type", "status")

    def __init__(self, status: int, content_type: bytes, body: bytes) -> None:
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
    def __init__(
        self,
        endpoint: str,
        runtime_client: Callable[[], Any],
        control_client: Callable[[], Any] | None = None,
        *,
        max_threads: int = 64,
    ) -> None:
        self._endpoint = endpoint
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

    async def send(self, method: str, path: str, body: bytes | None, request_id: str, stream: bool) -> Reply:
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
        try:
            described = await asyncio.to_thread(self._control.describe_endpoint, EndpointName=self._endpoint)
        except Exception:
            return False
        return described.get("EndpointStatus") == "InService"
