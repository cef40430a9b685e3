"""Prometheus metrics, in the gateway's own registry so a test or a second app never sees stale values.

With --workers above 1 each process keeps its own numbers; scrape through one worker per task or run
a single worker (the default), which the benchmark shows is enough for the engine behind it.
"""

from __future__ import annotations

import asyncio
import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests", "Requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gateway_request_seconds",
            "Time from request to last byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time from request to the first streamed chunk",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time spent in the gateway rather than waiting on the upstream",
            ["route"],
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Upstream failures by kind", ["kind"], registry=self.registry
        )
        self.inflight = Gauge("gateway_requests_in_flight", "Requests being served", registry=self.registry)
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by the upstream", ["kind"], registry=self.registry
        )
        # Children are resolved once: a labels() lookup per request is measurable on the hot path.
        self._children: dict[tuple[str, int], tuple[Counter, Histogram, Histogram, Histogram]] = {}
        self.prompt_tokens = self.tokens.labels("prompt")
        self.completion_tokens = self.tokens.labels("completion")

    def observe(self, route: str, status: int, latency: float, overhead: float, ttft: float | None) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = self._children[(route, status)] = (
                self.requests.labels(route, str(status)),
                self.latency.labels(route),
                self.overhead.labels(route),
                self.ttft.labels(route),
            )
        children[0].inc()
        children[1].observe(latency)
        children[2].observe(overhead)
        if ttft is not None:
            children[3].observe(ttft)

    def upstream_error(self, kind: str) -> None:
        self.upstream_errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _MetricsProtocol(asyncio.Protocol):
    """GET /metrics and nothing else, one request a connection: Prometheus's scrape needs no more."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        if b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > 16384:
                self._transport.close()
            return
        line = self._buffer.split(b"\r\n", 1)[0].split()
        if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?", 1)[0] == b"/metrics":
            status, body, kind = b"200 OK", self._metrics.render(), CONTENT_TYPE_LATEST.encode()
        else:
            status, body, kind = b"404 Not Found", b"not found\n", b"text/plain"
        self._transport.write(
            b"HTTP/1.1 %b\r\nContent-Type: %b\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%b"
            % (status, kind, len(body), body)
        )
        self._transport.close()


class MetricsServer:
    """/metrics on its own port (GATEWAY_METRICS_PORT, default 9100), which the load balancer's target
    group does not forward: the public port answers /metrics with 404. Port 0 picks a free one
    (tests); a negative port turns it off."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self.port: int | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self._port < 0 or self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _MetricsProtocol(self._metrics),
            self._host,
            self._port,
            reuse_address=True,
            # With --workers each process serves its own numbers on the same port (SO_REUSEPORT).
            reuse_port=self._port != 0 and hasattr(socket, "SO_REUSEPORT"),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
