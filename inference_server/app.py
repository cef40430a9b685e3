"""The gateway as a pure ASGI app: one dict lookup routes a request, bodies pass through as bytes.

No framework on the hot path: per request the gateway does a header scan, a SHA-256, one JSON parse of
the body (for the model, `stream` and images), and hands the unchanged bytes to the upstream client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
from botocore.config import Config

from inference_server.accesslog import AccessLog
from inference_server.auth import KeyStore, keys_from_file, read_secret_string, secret_fetcher
from inference_server.clients import ClientList, clients_fetcher
from inference_server.config import Settings, load
from inference_server.engine_metrics import GaugePublisher, metrics_url
from inference_server.errors import GatewayError, error_body, normalise_upstream_error, sse_error_event
from inference_server.limits import KeyLimits, Limiter
from inference_server.metrics import Metrics, MetricsServer
from inference_server.multimodal import ImageGuard
from inference_server.upstreams import OpenAIHTTPUpstream, Reply, SageMakerUpstream, Upstream, UpstreamError
from inference_server.usage import UsageMetrics

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
# OpenAI path -> upstream path (relative to the upstream's /v1 base; vLLM's /tokenize and /detokenize
# live at its root), and the HTTP method. The same set as vLLM's OpenAI server offers clients.
_PROXY_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "/chat/completions"),
    "/v1/completions": ("POST", "/completions"),
    "/v1/embeddings": ("POST", "/embeddings"),
    "/v1/responses": ("POST", "/responses"),
    "/v1/models": ("GET", "/models"),
    "/tokenize": ("POST", "/tokenize"),
    "/detokenize": ("POST", "/detokenize"),
    "/v1/rerank": ("POST", "/rerank"),
    "/v1/score": ("POST", "/score"),
    "/v1/audio/transcriptions": ("POST", "/audio/transcriptions"),
}
_MODEL_PREFIX = "/v1/models/"
_RETRIEVE = ("GET", "/models/{id}")
_MULTIPART = frozenset({"/audio/transcriptions"})
# Routes whose requests may carry media the engine would fetch: in messages/input content parts, or
# (the pooling routes) in content parts anywhere in the body.
_MEDIA = frozenset({"/chat/completions", "/responses", "/completions"})
_MEDIA_ANYWHERE = frozenset({"/embeddings", "/rerank", "/score"})
# Streams that report usage only when asked (stream_options.include_usage).
_USAGE_OPTION = frozenset({"/chat/completions", "/completions"})
_INVOCATION_ROUTES = {
    "/chat/completions", "/completions", "/embeddings", "/models", "/responses", "/tokenize", "/detokenize",
    "/rerank", "/score",
}  # fmt: skip
_BOM = b"\xef\xbb\xbf"
_INT64 = 2**63
_STREAM_FIELD = re.compile(rb'name="stream"\r\n(?:[^\r\n]*\r\n)*\r\ntrue', re.IGNORECASE)
_INCLUDE_USAGE = b'{"stream_options":{"include_usage":true},'


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
    limiter: Limiter | None = None
    status: int = 0
    # What really happened, for the log: complete, client_gone, upstream_error, cut_at_shutdown, error.
    outcome: str = "complete"
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

    __slots__ = ("_due", "_exchange", "_handle", "_interval", "_loop", "_task", "last", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, exchange: _Exchange) -> None:
        self._loop = loop
        self._interval = interval
        self._exchange = exchange
        self._task = asyncio.current_task()
        self._due = False
        # True only while the stream awaits the upstream: a stream blocked sending to a slow client
        # (backpressure) must never be cancelled, or the keep-alive would cut it.
        self.waiting = False
        self.last = time.perf_counter()
        self._handle: asyncio.TimerHandle | None = loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        idle = time.perf_counter() - self.last
        if idle >= self._interval:
            if self.waiting and not self._exchange.client_gone and self._task is not None:
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
    for index in range(brace, min(len(data), brace + 4096)):
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
                # Chat/completions name them prompt/completion, the Responses API input/output.
                prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
                completion = usage.get("completion_tokens", usage.get("output_tokens"))
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


def _event_end(data: bytes) -> int:
    """Where the last complete SSE event in `data` ends (0: none); LF, CRLF and CR framings."""
    end = 0
    for mark in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        found = data.rfind(mark)
        if found >= 0:
            end = max(end, found + len(mark))
    return end


def _decoder(headers: list[tuple[bytes, bytes]]) -> Any:
    for name, value in headers:
        if name == b"content-encoding":
            encoding = value.strip().lower()
            if encoding in (b"gzip", b"x-gzip"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if encoding == b"deflate":
                return zlib.decompressobj()
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
        usage: UsageMetrics | None = None,
        gauges: GaugePublisher | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.keys = keys
        self.metrics = metrics or Metrics()
        self.access_log = access_log or AccessLog(settings.log_requests)
        self.usage = usage or UsageMetrics(
            settings.metrics_stack or "local",
            interval=settings.usage_flush_interval,
            enabled=settings.usage_metrics,
        )
        engine_url = settings.engine_metrics_url or (
            metrics_url(settings.upstream_url) if settings.upstream == "vllm" else None
        )
        self.gauges = gauges or GaugePublisher(
            settings.metrics_stack or "local",
            lambda: self.requests_in_flight,
            engine_url=engine_url,
            engine_version=settings.engine_version,
            interval=settings.gauge_interval,
            enabled=settings.gauge_metrics,
        )
        self.limits = KeyLimits(settings.rpm_per_key, settings.concurrency_per_key)
        # Named clients' limits (GATEWAY_CLIENTS_PARAMETER), replaced on every refresh of the list.
        self.client_limits: dict[str, Limiter] = {}
        self.images = ImageGuard(settings.image_domains, settings.max_images, settings.max_image_bytes)
        self.metrics_server = MetricsServer(self.metrics, settings.host, settings.metrics_port)
        self._max_body = settings.max_body_bytes
        self._keepalive = settings.keepalive_interval
        self._inflight = 0
        self._ready_until = 0.0
        self._ready_value = False
        self._ready_lock = asyncio.Lock()
        # /metrics is not here: it has its own port (GATEWAY_METRICS_PORT) the load balancer does not
        # forward, so the public port answers it 404.
        self._simple: dict[tuple[str, str], Callable[[_Exchange, Send], Awaitable[None]]] = {
            ("GET", "/health"): self._health,
            ("GET", "/ready"): self._ready,
        }
        if settings.sagemaker_contract:
            self._simple[("GET", "/ping")] = self._ready
        # An external provider serves many models; this deployment offers one, under its own name.
        self._alias = (settings.served_model, settings.upstream_model) if settings.upstream_model else None
        self._rename: tuple[bytes, bytes] | None = None
        if self._alias:
            served, upstream_name = self._alias
            self._models_body = orjson.dumps(
                {"object": "list", "data": [{"id": served, "object": "model", "owned_by": "deployctl"}]}
            )
            self._model_body = orjson.dumps({"id": served, "object": "model", "owned_by": "deployctl"})
            # The provider's name never reaches a client: replies, streams and errors are renamed.
            self._rename = (orjson.dumps(upstream_name)[1:-1], orjson.dumps(served)[1:-1])
        if isinstance(keys, KeyStore):
            keys.set_on_refresh(self.apply_clients)

    @property
    def requests_in_flight(self) -> int:
        """Proxied requests this process is serving now (health checks are not counted)."""
        return self._inflight

    def apply_clients(self, fetched: Any) -> None:
        if not isinstance(fetched, ClientList):
            return
        current: dict[str, Limiter] = {}
        for name, limits in fetched.limits.items():
            limiter = self.client_limits.get(name) or Limiter()
            limiter.update(limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent_requests)
            current[name] = limiter
        self.client_limits = current

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
        await self.metrics_server.start()
        await self.usage.start()
        await self.gauges.start()

    async def shutdown(self) -> None:
        await self.gauges.close()
        await self.upstream.close()
        await self.keys.close()
        await self.metrics_server.close()
        await self.usage.close()

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
        if route is None and path.startswith(_MODEL_PREFIX) and len(path) > len(_MODEL_PREFIX):
            route = _RETRIEVE
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
            exchange.outcome = "error"
            if not exchange.responded:
                await self._send_error(send, exchange, exc)
        except _ClientGone:
            exchange.status, exchange.error, exchange.outcome = 499, "client_disconnected", "client_gone"
        except asyncio.CancelledError:
            # Not ours (those are absorbed): the server cancelled us, i.e. the shutdown grace ran out.
            exchange.outcome, exchange.error = "cut_at_shutdown", exchange.error or "shutdown"
            raise
        except Exception:
            # A bug of ours still answers in OpenAI's shape; the traceback holds no key (we keep only
            # digests), so it may be logged.
            log.exception("unhandled error in request %s", request_id)
            exchange.error, exchange.outcome = "internal_error", "error"
            if not exchange.responded:
                await self._send_error(send, exchange, GatewayError(500, "internal gateway error"))
        finally:
            self._inflight -= 1
            self.metrics.inflight.dec()
            # Unknown paths share one label: a client must not be able to mint metric series.
            label = route[1] if route else "/invocations" if invocation else "other"
            self._finish(exchange, label)

    def _finish(self, exchange: _Exchange, route: str) -> None:
        latency = time.perf_counter() - exchange.started
        self.metrics.observe(
            route, exchange.status, latency, max(0.0, latency - exchange.upstream_wait), exchange.ttft
        )
        prompt, completion = exchange.prompt_tokens, exchange.completion_tokens
        if prompt:
            self.metrics.prompt_tokens.inc(prompt)
        if completion:
            self.metrics.completion_tokens.inc(completion)
        if exchange.limiter is not None and (prompt or completion):
            exchange.limiter.spend_tokens((prompt or 0) + (completion or 0))
        if exchange.key_id is not None:
            self.usage.record(
                exchange.key_id,
                exchange.status,
                latency,
                prompt,
                completion,
                exchange.outcome != "complete",
                exchange.ttft,
            )
        self.access_log.write(
            request_id=exchange.request_id,
            key_id=exchange.key_id,
            method=exchange.method,
            path=exchange.path,
            model=exchange.model,
            status=exchange.status,
            latency=latency,
            ttft=exchange.ttft,
            prompt_tokens=prompt,
            completion_tokens=completion,
            error=exchange.error,
            outcome=exchange.outcome,
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
        extra: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = (),
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
            allow = b"GET" if exchange.path.startswith("/v1/models") else b"POST"
            extra = ((b"allow", allow),)
        await self._respond(send, exchange, exc.status, exc.body(), extra=extra)

    async def _health(self, exchange: _Exchange, send: Send) -> None:
        await self._respond(send, exchange, 200, b'{"status":"ok"}')

    async def ready(self) -> bool:
        """The upstream's readiness, asked at most once per GATEWAY_READY_CACHE_SECONDS: anonymous
        /ready calls must not each cost an upstream call."""
        now = time.monotonic()
        if now < self._ready_until:
            return self._ready_value
        async with self._ready_lock:
            if time.monotonic() >= self._ready_until:
                self._ready_value = await self.upstream.ready()
                self._ready_until = time.monotonic() + self.settings.ready_cache_seconds
        return self._ready_value

    async def _ready(self, exchange: _Exchange, send: Send) -> None:
        if await self.ready():
            await self._respond(send, exchange, 200, b'{"status":"ready"}')
        else:
            await self._send_error(
                send,
                exchange,
                GatewayError(503, "the upstream is not ready", code="upstream_not_ready", retry_after=5),
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
        # Any run of spaces or tabs separates the scheme from the key (RFC 9110's 1*SP, and clients
        # that send a tab).
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != b"bearer" or not parts[1].strip():
            raise GatewayError(
                401, "malformed Authorization header: expected Bearer <key>", code="invalid_api_key"
            )
        try:
            text = parts[1].strip().decode("ascii")
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
        limiter: Limiter | None = None
        if invocation:
            # SageMaker authenticated the caller with IAM and stripped Authorization; its own
            # throttling applies, so per-key limits would only cap the whole endpoint.
            exchange.key_id = "iam"
        else:
            exchange.key_id = name = await self._authenticate(scope)
            limiter = self.client_limits.get(name) if self.client_limits else None
            if limiter is None:
                limiter = self.limits.limiter(name)
            if limiter is not None:
                limiter.acquire()
                exchange.limiter = limiter
        try:
            upstream_path = route[1] if route is not None else None
            supports = self.upstream.supports
            if (
                upstream_path is not None
                and supports is not None
                and upstream_path not in supports
                and upstream_path != "/models/{id}"
            ):
                raise GatewayError(
                    404,
                    f"{exchange.path} is not offered by this deployment's provider",
                    code="route_not_supported",
                )
            body = await self._read_body(scope, receive)
            if route is not None and route[0] == "GET":
                if upstream_path == "/models/{id}":
                    await self._retrieve_model(send, exchange, scope["path"][len(_MODEL_PREFIX) :])
                    return
                if self._alias:
                    await self._respond(send, exchange, 200, self._models_body)
                    return
                await self._forward(
                    receive, send, exchange, method="GET", path="/models", payload=None, stream=False
                )
                return
            if upstream_path in _MULTIPART:
                content_type = _header(scope, b"content-type") or b""
                if not content_type.lower().startswith(b"multipart/form-data"):
                    raise GatewayError(400, "send the audio as multipart/form-data", code="invalid_body")
                stream = _STREAM_FIELD.search(body) is not None
                await self._forward(
                    receive,
                    send,
                    exchange,
                    method="POST",
                    path=upstream_path,
                    payload=body,
                    stream=stream,
                    content_type=content_type,
                )
                return
            if body.startswith(_BOM):
                # RFC 8259 lets a parser ignore a BOM; clients written for Windows send one.
                body = body[3:]
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise GatewayError(400, "the request body is not valid JSON", code="invalid_json") from None
            if not isinstance(parsed, dict):
                raise GatewayError(422, "the request body must be a JSON object", code="invalid_body")
            seed = parsed.get("seed")
            if isinstance(seed, float) and abs(seed) >= _INT64:
                # orjson reads integers beyond 64 bits as floats; vLLM takes a 64-bit seed. Refuse it
                # rather than let a rewrite turn it into a float.
                raise GatewayError(
                    400,
                    "seed must be an integer between -2^63 and 2^63-1",
                    code="invalid_value",
                    param="seed",
                )
            model = parsed.get("model")
            exchange.model = model if isinstance(model, str) else None
            payload = body
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
                payload = orjson.dumps(parsed)
            stream = parsed.get("stream") is True
            if upstream_path is None:
                upstream_path = self._invocation_route(scope, parsed)
            if upstream_path == "/models":
                await self._forward(
                    receive, send, exchange, method="GET", path="/models", payload=None, stream=False
                )
                return
            if upstream_path in _MEDIA:
                await self.images.check(parsed)
            elif upstream_path in _MEDIA_ANYWHERE:
                await self.images.check(parsed, deep=True)
            strip_usage = False
            if stream and upstream_path in _USAGE_OPTION:
                options = parsed.get("stream_options")
                if not (isinstance(options, dict) and options.get("include_usage") is True):
                    # Ask for usage (what the client is charged by) and hide it from a client that
                    # did not ask. Inserted as bytes when possible: no re-encoding of the body.
                    strip_usage = True
                    if options is None and payload[:1] == b"{":
                        payload = _INCLUDE_USAGE + payload[1:]
                    else:
                        parsed["stream_options"] = {
                            **(options if isinstance(options, dict) else {}),
                            "include_usage": True,
                        }
                        payload = orjson.dumps(parsed)
            await self._forward(
                receive,
                send,
                exchange,
                method="POST",
                path=upstream_path,
                payload=payload,
                stream=stream,
                strip_usage=strip_usage,
            )
        finally:
            if limiter is not None:
                limiter.release()

    async def _retrieve_model(self, send: Send, exchange: _Exchange, model_id: str) -> None:
        if self._alias:
            if model_id == self._alias[0]:
                await self._respond(send, exchange, 200, self._model_body)
                return
            raise GatewayError(404, f"the model '{model_id}' does not exist", code="model_not_found")
        # vLLM has no /v1/models/{id}: the list is asked for and searched.
        try:
            reply = await self.upstream.send("GET", "/models", None, exchange.request_id, False)
        except UpstreamError as exc:
            raise GatewayError(exc.status, exc.message, code=f"upstream_{exc.kind}") from None
        try:
            data = await reply.read()
        except UpstreamError as exc:
            raise GatewayError(exc.status, exc.message, code=f"upstream_{exc.kind}") from None
        finally:
            reply.close()
        if reply.status != 200:
            raise GatewayError(502, "the upstream could not list its models", code="upstream_error")
        try:
            listed = orjson.loads(data).get("data") or []
        except (orjson.JSONDecodeError, AttributeError):
            listed = []
        for entry in listed:
            if isinstance(entry, dict) and entry.get("id") == model_id:
                await self._respond(send, exchange, 200, orjson.dumps(entry))
                return
        raise GatewayError(404, f"the model '{model_id}' does not exist", code="model_not_found")

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
        content_type: bytes = _JSON,
        strip_usage: bool = False,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, task, exchange))
        reply: Reply | None = None
        try:
            waited = time.perf_counter()
            try:
                reply = await self.upstream.send(
                    method, path, payload, exchange.request_id, stream, content_type
                )
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
                await self._stream(send, exchange, reply, strip_usage)
            else:
                await self._buffered(send, exchange, reply)
        except asyncio.CancelledError:
            if not exchange.client_gone:
                raise
            # The client left: we cancelled ourselves, and closing the reply below aborts upstream.
            task.uncancel()
            exchange.status, exchange.error, exchange.outcome = 499, "client_disconnected", "client_gone"
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

    def _renamed(self, data: bytes) -> bytes:
        rename = self._rename
        return data.replace(rename[0], rename[1]) if rename is not None else data

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
        headers = reply.headers
        if status >= 400:
            self.metrics.upstream_error(f"http_{status}")
            exchange.outcome = "upstream_error"
            decoder = _decoder(headers)
            if decoder is not None:
                with contextlib.suppress(zlib.error):
                    data = decoder.decompress(data) + decoder.flush()
            extra = [(n, v) for n, v in headers if n.startswith(b"x-ratelimit-") or n == b"retry-after"]
            if status in (429, 503) and not any(n == b"retry-after" for n, _ in extra):
                extra.append((b"retry-after", b"5"))
            if status == 401 and getattr(self.upstream, "external", False):
                # The provider refused OUR key: that is not the client's invalid_api_key, and the
                # provider's message (which names a fragment of our key) must not reach the client.
                self.metrics.upstream_error("provider_auth")
                body = error_body(
                    502, "the upstream provider refused this gateway's credentials", code="upstream_auth"
                )
                await self._respond(send, exchange, 502, body)
                return
            if status >= 500 and status not in (503, 504):
                status = 502
            if getattr(self.upstream, "external", False) and status in (403, 407):
                body = error_body(502, "the upstream provider refused the request", code="upstream_forbidden")
                await self._respond(send, exchange, 502, body)
                return
            body = self._renamed(normalise_upstream_error(reply.status, data))
            await self._respond(send, exchange, status, body, extra=extra)
            return
        decoder = _decoder(headers) if self._rename is not None or b'"usage"' not in data else None
        if decoder is not None:
            try:
                plain = decoder.decompress(data) + decoder.flush()
            except zlib.error:
                plain = data
            if self._rename is not None:
                # Renaming needs the plain body; it then goes out uncompressed.
                data = plain
                headers = [(n, v) for n, v in headers if n != b"content-encoding"]
            exchange.prompt_tokens, exchange.completion_tokens = _usage(plain)
        else:
            exchange.prompt_tokens, exchange.completion_tokens = _usage(data)
        await self._respond(
            send, exchange, status, self._renamed(data), content_type=reply.content_type, extra=headers
        )

    def _strip_usage_events(self, events: bytes, exchange: _Exchange) -> bytes:
        """Records the usage chunk's numbers and drops it (the client did not ask for it)."""
        kept = []
        for event in re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)", events):
            if b'"usage"' in event:
                prompt, completion = _usage(event)
                if completion is not None or prompt is not None:
                    exchange.prompt_tokens, exchange.completion_tokens = prompt, completion
                    if b'"choices":[]' in event or b'"choices": []' in event:
                        continue
            kept.append(event)
        return b"".join(kept)

    async def _stream(self, send: Send, exchange: _Exchange, reply: Reply, strip_usage: bool = False) -> None:
        exchange.status = 200
        headers = reply.headers
        decoder = _decoder(headers)
        passed = [
            (n, v) for n, v in headers if n.startswith(b"x-ratelimit-") or n == b"x-upstream-request-id"
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_SSE_HEADERS, (b"x-request-id", exchange.request_id.encode()), *passed],
            }
        )
        perf = time.perf_counter
        next_chunk = reply.next_chunk
        rename = self._rename
        # Only whole events are sent: a partial one waits for its end, so a keep-alive comment or an
        # error event never lands inside an event, whatever the framing (LF, CRLF or CR).
        pending = b""
        ticker = _KeepAlive(asyncio.get_running_loop(), self._keepalive, exchange)
        try:
            while True:
                waited = ticker.last = perf()
                ticker.waiting = True
                try:
                    chunk = await next_chunk()
                except asyncio.CancelledError:
                    ticker.waiting = False
                    if not ticker.take():
                        if not exchange.client_gone:
                            await self._stream_cut(send, exchange, "the gateway is shutting down")
                        raise
                    exchange.upstream_wait += perf() - waited
                    await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})
                    continue
                except UpstreamError as exc:
                    ticker.waiting = False
                    exchange.upstream_wait += perf() - waited
                    self.metrics.upstream_error(exc.kind)
                    exchange.error, exchange.outcome = f"upstream_{exc.kind}", "upstream_error"
                    exchange.finished = True
                    # The partial event (if any) is dropped: the client gets whole events only.
                    event = sse_error_event(exc.status, exc.message, code=exchange.error)
                    await send({"type": "http.response.body", "body": event, "more_body": False})
                    return
                ticker.waiting = False
                now = perf()
                exchange.upstream_wait += now - waited
                if not chunk:
                    break
                if decoder is not None:
                    chunk = decoder.decompress(chunk)
                    if not chunk:
                        continue
                if exchange.ttft is None:
                    exchange.ttft = now - exchange.started
                if pending:
                    chunk, pending = pending + chunk, b""
                if not (chunk.endswith(b"\n\n") or chunk.endswith(b"\r\n\r\n")):
                    end = _event_end(chunk)
                    chunk, pending = chunk[:end], chunk[end:]
                    if not chunk:
                        continue
                if b'"usage"' in chunk:
                    if strip_usage:
                        chunk = self._strip_usage_events(chunk, exchange)
                    else:
                        prompt, completion = _usage(chunk)
                        if completion is not None:
                            exchange.prompt_tokens, exchange.completion_tokens = prompt, completion
                    if not chunk:
                        continue
                if rename is not None:
                    chunk = chunk.replace(rename[0], rename[1])
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            ticker.stop()
        if pending.strip():
            # The upstream ended inside an event: an error event, not half an event.
            exchange.error, exchange.outcome = "upstream_stream", "upstream_error"
            exchange.finished = True
            event = sse_error_event(502, "the upstream ended the stream inside an event", code=exchange.error)
            await send({"type": "http.response.body", "body": event, "more_body": False})
            return
        exchange.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream_cut(self, send: Send, exchange: _Exchange, message: str) -> None:
        exchange.outcome, exchange.error = "cut_at_shutdown", "shutdown"
        exchange.finished = True
        with contextlib.suppress(Exception):
            event = sse_error_event(503, message, code="shutting_down")
            await send({"type": "http.response.body", "body": event, "more_body": False})


def build_gateway(settings: Settings) -> Gateway:
    """The gateway with the adapters its settings name; AWS clients honour AWS_ENDPOINT_URL."""
    static = list(settings.api_keys)
    if settings.api_keys_file:
        static.extend(keys_from_file(settings.api_keys_file))
    fetch: Callable[[], Any] | None = None
    refresh_interval = settings.key_refresh_interval
    if settings.clients_parameter:
        fetch = clients_fetcher(
            lambda: _boto_client("ssm"), lambda: _boto_client("secretsmanager"), settings.clients_parameter
        )
        refresh_interval = settings.clients_refresh_interval
    elif settings.api_key_secret:
        secret_id = settings.api_key_secret
        fetch = _lazy_fetch(secret_id, secret_fetcher)
    keys = KeyStore(
        static,
        fetch,
        refresh_interval=refresh_interval,
        min_refresh_interval=settings.key_refresh_min_interval,
    )
    if not keys.enabled and not settings.sagemaker_contract and not settings.allow_anonymous:
        raise SystemExit(
            "no API keys: set --api-keys, --api-keys-file, --api-key-secret or --allow-anonymous"
        )
    upstream: Upstream
    if settings.upstream == "sagemaker":
        assert settings.sagemaker_endpoint is not None
        # AWS: "If your model is going to take 50-60 seconds of processing time, the SDK socket timeout
        # should be set to be 70 seconds" (InvokeEndpoint API reference); botocore's default is 60.
        # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
        read_timeout = settings.upstream_timeout or 70.0
        upstream = SageMakerUpstream(
            settings.sagemaker_endpoint,
            # One attempt: a retried InvokeEndpoint may run the model twice for one request.
            lambda: _boto_client(
                "sagemaker-runtime", max_pool_connections=64, attempts=1, read_timeout=read_timeout
            ),
            lambda: _boto_client("sagemaker"),
            ready_cache_seconds=max(settings.ready_cache_seconds, 5.0),
        )
    else:
        provider = None
        rereadable = False
        if settings.upstream == "external":
            # A named secret is read and re-read (a rotation needs no restart); a value ECS injected
            # at task start (GATEWAY_PROVIDER_KEY) can only change with a new task.
            injected = os.environ.get("GATEWAY_PROVIDER_KEY")
            if not injected and not settings.provider_key_secret:
                raise SystemExit("--upstream external needs --provider-key-secret (or GATEWAY_PROVIDER_KEY)")
            provider_secret = settings.provider_key_secret or ""
            rereadable = bool(provider_secret)

            def provider() -> str:
                if provider_secret:
                    return read_secret_string(_boto_client("secretsmanager"), provider_secret)
                return injected or ""

        upstream = OpenAIHTTPUpstream(
            settings.upstream_url,
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.upstream_timeout or settings.first_byte_timeout,
            connect_retries=settings.connect_retries,
            provider_key=provider,
            idle_timeout=settings.upstream_idle_timeout,
            provider_key_refresh_interval=settings.provider_key_refresh_interval,
            provider_key_rereadable=rereadable,
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


def _boto_client(
    service: str, max_pool_connections: int = 10, attempts: int = 3, read_timeout: float | None = None
) -> Any:
    config = Config(max_pool_connections=max_pool_connections, retries={"total_max_attempts": attempts})
    if read_timeout is not None:
        config = config.merge(Config(read_timeout=read_timeout))
    return boto3.session.Session().client(service, config=config)


def create_app() -> Gateway:
    """uvicorn's factory: settings from the environment, which `__main__` fills from the flags."""
    return build_gateway(load([]))
