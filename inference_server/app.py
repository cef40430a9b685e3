"""The gateway as a pure ASGI app: one dict lookup routes a request, bodies pass through as bytes.

No framework on the hot path: per request the gateway does a header scan, a SHA-256, one JSON parse of
the body (for the model, `stream` and images), and hands the unchanged bytes to the upstream client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
from botocore.config import Config

from inference_server.accesslog import AccessLog
from inference_server.auth import KeyStore, keys_from_file, read_secret_string, secret_fetcher
from inference_server.config import Settings, load
from inference_server.errors import GatewayError, normalise_upstream_error, sse_error_event
from inference_server.limits import KeyLimits
from inference_server.metrics import Metrics
from inference_server.multimodal import ImageGuard
from inference_server.upstreams import OpenAIHTTPUpstream, Reply, SageMakerUpstream, Upstream, UpstreamError

log = logging.getLogger("inference_server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_KEEPALIVE = b": keep-alive\n\n"
_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Proxies in front (nginx, some ALB setups) must not buffer an event stream either.
    (b"x-accel-buffering", b"no"),
)
# OpenAI path -> upstream path (relative to the upstream's /v1 base), and the HTTP method.
_PROXY_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "/chat/completions"),
    "/v1/completions": ("POST", "/completions"),
    "/v1/embeddings": ("POST", "/embeddings"),
    "/v1/models": ("GET", "/models"),
}
_INVOCATION_ROUTES = {"/chat/completions", "/completions", "/embeddings", "/models"}


class _ClientGone(Exception):
    pass


@dataclass(slots=True)
class _Exchange:
    """What one request has learnt so far, for its log line and metrics."""

    request_id: str
    method: str
    path: str
    started: float
    key_id: str | None = None
    model: str | None = None
    status: int = 0
    ttft: float | None = None
    upstream_wait: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    responded: bool = False
    finished: bool = False
    client_gone: bool = False


class _KeepAlive:
    """Interrupts a stream's wait for the upstream after `interval` of silence, to send a comment.

    One lazily re-armed timer per stream instead of a timeout around every chunk: a chunk costs a
    float store, and the timer fires at most once per interval.
    """

    __slots__ = ("_due", "_exchange", "_handle", "_interval", "_loop", "_task", "last")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, exchange: _Exchange) -> None:
        self._loop = loop
        self._interval = interval
        self._exchange = exchange
        self._task = asyncio.current_task()
        self._due = False
        self.last = time.perf_counter()
        self._handle: asyncio.TimerHandle | None = loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        idle = time.perf_counter() - self.last
        if idle >= self._interval and not self._exchange.client_gone and self._task is not None:
            self._due = True
            self._task.cancel()
            self._handle = self._loop.call_later(self._interval, self._fire)
        else:
            self._handle = self._loop.call_later(self._interval - idle, self._fire)

    def take(self) -> bool:
        """True when the cancellation was ours (a keep-alive is due), which is then absorbed."""
        if not self._due or self._exchange.client_gone or self._task is None:
            return False
        self._due = False
        self._task.uncancel()
        return True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _usage(data: bytes) -> tuple[int | None, int | None]:
    # Only the usage object is parsed: decoding a whole completion to count its tokens would cost
    # more than everything else the gateway does for it.
    start = data.rfind(b'"usage"')
    if start < 0:
        return None, None
    brace = data.find(b"{", start)
    if brace < 0 or data[start + 7 : brace].strip(b" :\t\r\n"):
        return None, None
    depth = 0
    for index in range(brace, min(len(data), brace + 2048)):
        char = data[index]
        if char == 0x7B:
            depth += 1
        elif char == 0x7D:
            depth -= 1
            if depth == 0:
                try:
                    usage = orjson.loads(data[brace : index + 1])
                except orjson.JSONDecodeError:
                    return None, None
                prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
                return (
                    prompt if isinstance(prompt, int) else None,
                    completion if isinstance(completion, int) else None,
                )
    return None, None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class Gateway:
    def __init__(
        self,
        settings: Settings,
        upstream: Upstream,
        keys: KeyStore,
        *,
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.keys = keys
        self.metrics = metrics or Metrics()
        self.access_log = access_log or AccessLog(settings.log_requests)
        self.limits = KeyLimits(settings.rpm_per_key, settings.concurrency_per_key)
        self.images = ImageGuard(settings.image_domains, settings.max_images, settings.max_image_bytes)
        self._max_body = settings.max_body_bytes
        self._keepalive = settings.keepalive_interval
        self._inflight = 0
        self._simple: dict[tuple[str, str], Callable[[_Exchange, Send], Awaitable[None]]] = {
            ("GET", "/health"): self._health,
            ("GET", "/ready"): self._ready,
            ("GET", "/metrics"): self._metrics,
        }
        if settings.sagemaker_contract:
            self._simple[("GET", "/ping")] = self._ready
        # An external provider serves many models; this deployment offers one, under its own name.
        self._alias = (settings.served_model, settings.upstream_model) if settings.upstream_model else None
        if self._alias:
            self._models_body = orjson.dumps(
                {
                    "object": "list",
                    "data": [{"id": self._alias[0], "object": "model", "owned_by": "deployctl"}],
                }
            )

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    # The message names the failure's kind only: a secret's value must not leak.
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.keys.start()
        await self.upstream.start()

    async def shutdown(self) -> None:
        await self.upstream.close()
        await self.keys.close()

    # -- dispatch --------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        raw_id = _header(scope, b"x-request-id")
        request_id = (
            raw_id.decode() if raw_id is not None and _REQUEST_ID.match(raw_id) else os.urandom(12).hex()
        )
        method, path = scope["method"], scope["path"]
        exchange = _Exchange(request_id, method, path, started)
        simple = self._simple.get((method, path))
        if simple is not None:
            await simple(exchange, send)
            return
        route = _PROXY_ROUTES.get(path)
        invocation = path == "/invocations" and self.settings.sagemaker_contract
        self._inflight += 1
        self.metrics.inflight.inc()
        try:
            if route is None and not invocation:
                raise GatewayError(404, f"no route {path}", code="not_found")
            if route is not None and method != route[0]:
                raise GatewayError(405, f"{path} takes {route[0]}", code="method_not_allowed")
            if invocation and method != "POST":
                raise GatewayError(405, "/invocations takes POST", code="method_not_allowed")
            await self._proxy(scope, receive, send, exchange, route=route, invocation=invocation)
        except GatewayError as exc:
            exchange.error = exc.code or exc.message
            if not exchange.responded:
                await self._send_error(send, exchange, exc)
        except _ClientGone:
            exchange.status, exchange.error = 499, "client_disconnected"
        except Exception:
            # A bug of ours still answers in OpenAI's shape; the traceback holds no key (we keep only
            # digests), so it may be logged.
            log.exception("unhandled error in request %s", request_id)
            exchange.error = "internal_error"
            if not exchange.responded:
                await self._send_error(send, exchange, GatewayError(500, "internal gateway error"))
        finally:
            self._inflight -= 1
            self.metrics.inflight.dec()
            # Unknown paths share one label: a client must not be able to mint metric series.
            self._finish(exchange, route[1] if route else "/invocations" if invocation else "other")

    def _finish(self, exchange: _Exchange, route: str) -> None:
        latency = time.perf_counter() - exchange.started
        self.metrics.observe(
            route, exchange.status, latency, max(0.0, latency - exchange.upstream_wait), exchange.ttft
        )
        if exchange.prompt_tokens:
            self.metrics.prompt_tokens.inc(exchange.prompt_tokens)
        if exchange.completion_tokens:
            self.metrics.completion_tokens.inc(exchange.completion_tokens)
        self.access_log.write(
            request_id=exchange.request_id,
            key_id=exchange.key_id,
            method=exchange.method,
            path=exchange.path,
            model=exchange.model,
            status=exchange.status,
            latency=latency,
            ttft=exchange.ttft,
            prompt_tokens=exchange.prompt_tokens,
            completion_tokens=exchange.completion_tokens,
            error=exchange.error,
        )

    # -- small endpoints -------------------------------------------------------------------------

    async def _respond(
        self,
        send: Send,
        exchange: _Exchange,
        status: int,
        body: bytes,
        *,
        content_type: bytes = _JSON,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        exchange.status = status
        exchange.responded = True
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", exchange.request_id.encode()),
                    *extra,
                ],
            }
        )
        exchange.finished = True
        await send({"type": "http.response.body", "body": body})

    async def _send_error(self, send: Send, exchange: _Exchange, exc: GatewayError) -> None:
        extra: tuple[tuple[bytes, bytes], ...] = ()
        if exc.retry_after is not None:
            extra = ((b"retry-after", str(exc.retry_after).encode()),)
        elif exc.status == 405:
            extra = ((b"allow", b"GET" if exchange.path == "/v1/models" else b"POST"),)
        await self._respond(send, exchange, exc.status, exc.body(), extra=extra)

    async def _health(self, exchange: _Exchange, send: Send) -> None:
        await self._respond(send, exchange, 200, b'{"status":"ok"}')

    async def _ready(self, exchange: _Exchange, send: Send) -> None:
        if await self.upstream.ready():
            await self._respond(send, exchange, 200, b'{"status":"ready"}')
        else:
            await self._send_error(
                send,
                exchange,
                GatewayError(503, "the upstream is not ready", code="upstream_not_ready", retry_after=5),
            )

    async def _metrics(self, exchange: _Exchange, send: Send) -> None:
        await self._respond(
            send, exchange, 200, self.metrics.render(), content_type=self.metrics.content_type.encode()
        )

    # -- the proxy -------------------------------------------------------------------------------

    async def _authenticate(self, scope: Scope) -> str:
        if self.settings.allow_anonymous:
            return "anonymous"
        header = _header(scope, b"authorization")
        if header is None:
            raise GatewayError(
                401, "missing API key: send Authorization: Bearer <key>", code="missing_api_key"
            )
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            raise GatewayError(
                401, "malformed Authorization header: expected Bearer <key>", code="invalid_api_key"
            )
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            raise GatewayError(401, "invalid API key", code="invalid_api_key") from None
        key_id = await self.keys.check(text)
        if key_id is None:
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        return key_id

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise GatewayError(
                413, f"request body larger than {self._max_body} bytes", code="request_too_large"
            )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        size = len(body)
        if not message.get("more_body") and size <= self._max_body:
            return body
        parts = [body]
        while True:
            if size > self._max_body:
                raise GatewayError(
                    413, f"request body larger than {self._max_body} bytes", code="request_too_large"
                )
            if not message.get("more_body"):
                return b"".join(parts)
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            parts.append(chunk)

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: _Exchange,
        *,
        route: tuple[str, str] | None,
        invocation: bool,
    ) -> None:
        if invocation:
            # SageMaker authenticated the caller with IAM and stripped Authorization; its own
            # throttling applies, so per-key limits would only cap the whole endpoint.
            exchange.key_id = "iam"
            limited = False
        else:
            exchange.key_id = await self._authenticate(scope)
            self.limits.acquire(exchange.key_id)
            limited = True
        try:
            body = await self._read_body(scope, receive)
            stream = False
            if route is not None and route[0] == "GET":
                method, upstream_path, payload = "GET", route[1], None
                if self._alias and upstream_path == "/models":
                    await self._respond(send, exchange, 200, self._models_body)
                    return
            else:
                payload = body
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise GatewayError(
                        400, "the request body is not valid JSON", code="invalid_json"
                    ) from None
                if not isinstance(parsed, dict):
                    raise GatewayError(422, "the request body must be a JSON object", code="invalid_body")
                model = parsed.get("model")
                exchange.model = model if isinstance(model, str) else None
                if self._alias:
                    if model != self._alias[0]:
                        served = self._alias[0]
                        raise GatewayError(
                            404,
                            f"the model '{model}' does not exist; this endpoint serves '{served}'",
                            code="model_not_found",
                            param="model",
                        )
                    parsed["model"] = self._alias[1]
                    payload = body = orjson.dumps(parsed)
                stream = parsed.get("stream") is True
                upstream_path = route[1] if route is not None else self._invocation_route(scope, parsed)
                method = "GET" if upstream_path == "/models" else "POST"
                if method == "GET":
                    payload = None
                elif b"image" in body:
                    await self.images.check(parsed)
            await self._forward(
                receive, send, exchange, method=method, path=upstream_path, payload=payload, stream=stream
            )
        finally:
            if limited:
                self.limits.release(exchange.key_id)

    @staticmethod
    def _invocation_route(scope: Scope, parsed: dict[str, Any]) -> str:
        attributes = _header(scope, b"x-amzn-sagemaker-custom-attributes") or b""
        for item in attributes.decode("latin-1").split(";"):
            name, _, value = item.strip().partition("=")
            if name == "route" and value in _INVOCATION_ROUTES:
                return value
        if "messages" in parsed:
            return "/chat/completions"
        if "prompt" in parsed:
            return "/completions"
        if "input" in parsed:
            return "/embeddings"
        raise GatewayError(400, "cannot tell which OpenAI route this invocation is for", code="unknown_route")

    async def _forward(
        self,
        receive: Receive,
        send: Send,
        exchange: _Exchange,
        *,
        method: str,
        path: str,
        payload: bytes | None,
        stream: bool,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, task, exchange))
        reply: Reply | None = None
        try:
            waited = time.perf_counter()
            try:
                reply = await self.upstream.send(method, path, payload, exchange.request_id, stream)
            except UpstreamError as exc:
                self.metrics.upstream_error(exc.kind)
                raise GatewayError(
                    exc.status,
                    exc.message,
                    code=f"upstream_{exc.kind}",
                    retry_after=5 if exc.status == 503 else None,
                ) from None
            finally:
                exchange.upstream_wait += time.perf_counter() - waited
            if stream and reply.status == 200 and reply.content_type.startswith(b"text/event-stream"):
                await self._stream(send, exchange, reply)
            else:
                await self._buffered(send, exchange, reply)
        except asyncio.CancelledError:
            if not exchange.client_gone:
                raise
            # The client left: we cancelled ourselves, and closing the reply below aborts upstream.
            task.uncancel()
            exchange.status, exchange.error = 499, "client_disconnected"
        finally:
            watcher.cancel()
            if reply is not None:
                reply.close()

    async def _watch_disconnect(self, receive: Receive, task: asyncio.Task[Any], exchange: _Exchange) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # After our last byte uvicorn reports a disconnect too: that one is not the client's.
                if not exchange.finished:
                    exchange.client_gone = True
                    task.cancel()
                return

    async def _buffered(self, send: Send, exchange: _Exchange, reply: Reply) -> None:
        waited = time.perf_counter()
        try:
            data = await reply.read()
        except UpstreamError as exc:
            self.metrics.upstream_error(exc.kind)
            raise GatewayError(exc.status, exc.message, code=f"upstream_{exc.kind}") from None
        finally:
            exchange.upstream_wait += time.perf_counter() - waited
        status = reply.status
        if status >= 400:
            self.metrics.upstream_error(f"http_{status}")
            if status >= 500 and status not in (503, 504):
                status = 502
            extra = ((b"retry-after", b"5"),) if status in (429, 503) else ()
            await self._respond(
                send, exchange, status, normalise_upstream_error(reply.status, data), extra=extra
            )
            return
        exchange.prompt_tokens, exchange.completion_tokens = _usage(data)
        await self._respond(send, exchange, status, data, content_type=reply.content_type)

    async def _stream(self, send: Send, exchange: _Exchange, reply: Reply) -> None:
        exchange.status = 200
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_SSE_HEADERS, (b"x-request-id", exchange.request_id.encode())],
            }
        )
        perf = time.perf_counter
        next_chunk = reply.next_chunk
        at_boundary = True
        ticker = _KeepAlive(asyncio.get_running_loop(), self._keepalive, exchange)
        try:
            while True:
                waited = ticker.last = perf()
                try:
                    chunk = await next_chunk()
                except asyncio.CancelledError:
                    if not ticker.take():
                        raise
                    exchange.upstream_wait += perf() - waited
                    # A comment only between events: inside one it would corrupt the event.
                    if at_boundary:
                        await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})
                    continue
                except UpstreamError as exc:
                    exchange.upstream_wait += perf() - waited
                    self.metrics.upstream_error(exc.kind)
                    exchange.error = f"upstream_{exc.kind}"
                    prefix = b"" if at_boundary else b"\n\n"
                    exchange.finished = True
                    event = prefix + sse_error_event(exc.status, exc.message, code=exchange.error)
                    await send({"type": "http.response.body", "body": event, "more_body": False})
                    return
                now = perf()
                exchange.upstream_wait += now - waited
                if not chunk:
                    break
                if exchange.ttft is None:
                    exchange.ttft = now - exchange.started
                if b'"usage"' in chunk:
                    prompt, completion = _usage(chunk)
                    if completion is not None:
                        exchange.prompt_tokens, exchange.completion_tokens = prompt, completion
                at_boundary = chunk.endswith(b"\n\n")
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            ticker.stop()
        exchange.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def build_gateway(settings: Settings) -> Gateway:
    """The gateway with the adapters its settings name; AWS clients honour AWS_ENDPOINT_URL."""
    static = list(settings.api_keys)
    if settings.api_keys_file:
        static.extend(keys_from_file(settings.api_keys_file))
    fetch = None
    if settings.api_key_secret:
        secret_id = settings.api_key_secret
        fetch = _lazy_fetch(secret_id, secret_fetcher)
    keys = KeyStore(
        static,
        fetch,
        refresh_interval=settings.key_refresh_interval,
        min_refresh_interval=settings.key_refresh_min_interval,
    )
    if not keys.enabled and not settings.sagemaker_contract and not settings.allow_anonymous:
        raise SystemExit(
            "no API keys: set --api-keys, --api-keys-file, --api-key-secret or --allow-anonymous"
        )
    upstream: Upstream
    if settings.upstream == "sagemaker":
        assert settings.sagemaker_endpoint is not None
        upstream = SageMakerUpstream(
            settings.sagemaker_endpoint,
            # One attempt: a retried InvokeEndpoint may run the model twice for one request.
            lambda: _boto_client("sagemaker-runtime", max_pool_connections=64, attempts=1),
            lambda: _boto_client("sagemaker"),
        )
    else:
        provider = None
        if settings.upstream == "external":
            # ECS injects the key's value from Secrets Manager at task start (never in argv or a flag);
            # a local run names the secret and the gateway reads it.
            injected = os.environ.get("GATEWAY_PROVIDER_KEY")
            if not injected and not settings.provider_key_secret:
                raise SystemExit("--upstream external needs --provider-key-secret (or GATEWAY_PROVIDER_KEY)")
            provider_secret = settings.provider_key_secret or ""

            def provider() -> str:
                if injected:
                    return injected
                return read_secret_string(_boto_client("secretsmanager"), provider_secret)

        upstream = OpenAIHTTPUpstream(
            settings.upstream_url,
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            connect_retries=settings.connect_retries,
            provider_key=provider,
        )
    return Gateway(settings, upstream, keys)


def _lazy_fetch(
    secret_id: str, make: Callable[[Any, str], Callable[[], list[str]]]
) -> Callable[[], list[str]]:
    state: dict[str, Callable[[], list[str]]] = {}

    def fetch() -> list[str]:
        if "fetch" not in state:
            state["fetch"] = make(_boto_client("secretsmanager"), secret_id)
        return state["fetch"]()

    return fetch


def _boto_client(service: str, max_pool_connections: int = 10, attempts: int = 3) -> Any:
    return boto3.session.Session().client(
        service,
        config=Config(max_pool_connections=max_pool_connections, retries={"total_max_attempts": attempts}),
    )


def create_app() -> Gateway:
    """uvicorn's factory: settings from the environment, which `__main__` fills from the flags."""
    return build_gateway(load([]))
