"""The task's load gauges as CloudWatch metrics: the gateway's in-flight requests and the engine's queue.

Every GATEWAY_GAUGE_INTERVAL seconds (default 10) the gateway reads vLLM's own Prometheus endpoint on
loopback (the engine's port is never published) and writes one embedded metric format (EMF) line on
stdout, which awslogs ships to CloudWatch Logs, which extracts the metrics
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
The line has the one dimension set [Stack]: every task of a deployment adds its data points to the
same metric, and CloudWatch's Average over a period is Sum / SampleCount of all of them
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html), i.e. the
per-task average that target tracking wants, with no metric math. A task publishes its zeros too: an
idle task that stayed silent would leave the average to the busy ones and scale-in would never come.

vLLM's names: `vllm:num_requests_waiting` (the engine's queue), `vllm:num_requests_running` and the KV
cache gauge, 0-1, which vLLM 0.9 renamed from `vllm:gpu_cache_usage_perc` to `vllm:kv_cache_usage_perc`
(vllm-project/vllm#18354, "Deprecated in 0.9 - Renamed as vllm:kv_cache_usage_perc" in
vllm/v1/metrics/loggers.py); per vLLM's metrics deprecation policy a deprecated name is hidden one minor
release later and removed the one after. The name table is keyed on ENGINE_VERSION (the image's vLLM
release, which the stack sets) and falls back to the other name when the expected one is absent, so a
mislabelled image still reports. With data parallelism vLLM labels each engine (`engine="0"`, ...):
the counts are summed over engines, the KV usage averaged.

If the engine cannot be read, its three metrics are left out of that line rather than written as
zeros: a zero would read as an idle engine and scale the service in while it is failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import orjson
from prometheus_client.parser import text_string_to_metric_families

from inference_server import metric_names as names
from inference_server.periodic import Periodic

log = logging.getLogger("inference_server.engine_metrics")

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_CACHE = "vllm:kv_cache_usage_perc"
KV_CACHE_BEFORE_0_9 = "vllm:gpu_cache_usage_perc"
KV_CACHE_RENAMED_IN = (0, 9, 0)
_MAX_BODY = 4 * 1024 * 1024  # vLLM's /metrics is tens of KB; anything this big is not it
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def kv_cache_names(engine_version: str | None) -> tuple[str, str]:
    """(the name this vLLM release publishes, the other one): unknown versions are taken as current."""
    match = _VERSION.match(engine_version or "")
    if match:
        release = tuple(int(part or 0) for part in match.groups())
        if release < KV_CACHE_RENAMED_IN:
            return KV_CACHE_BEFORE_0_9, KV_CACHE
    return KV_CACHE, KV_CACHE_BEFORE_0_9


@dataclass(frozen=True)
class EngineSample:
    waiting: float | None
    running: float | None
    kv_cache_percent: float | None


def parse(text: str, kv_names: tuple[str, str]) -> EngineSample:
    """The three gauges from vLLM's Prometheus text; ValueError if the text is not Prometheus's format."""
    values: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values.setdefault(sample.name, []).append(float(sample.value))
    except ValueError as exc:
        raise ValueError(f"the engine's /metrics is not Prometheus text: {exc}") from None
    kv = values.get(kv_names[0]) or values.get(kv_names[1])
    waiting, running = values.get(WAITING), values.get(RUNNING)
    return EngineSample(
        waiting=sum(waiting) if waiting else None,
        running=sum(running) if running else None,
        # vLLM reports 0-1 ("1 means 100 percent usage"); CloudWatch's Percent unit is 0-100.
        kv_cache_percent=round(100.0 * sum(kv) / len(kv), 3) if kv else None,
    )


def metrics_url(upstream_url: str) -> str:
    """vLLM serves /metrics at its root, beside the /v1 API the gateway proxies to."""
    parts = urlsplit(upstream_url)
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}/metrics"


class _Reply:
    def __init__(self) -> None:
        self.body = bytearray()
        self.done = False

    def on_body(self, data: bytes) -> None:
        self.body += data
        if len(self.body) > _MAX_BODY:
            raise ValueError("the engine's /metrics is too large")

    def on_message_complete(self) -> None:
        self.done = True


async def scrape(url: str, timeout: float) -> str:
    """GET `url` (plain HTTP on loopback, one request per connection): the body of a 200, else OSError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise OSError(f"only http:// engine metrics URLs are read, not {url!r}")
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def fetch() -> str:
        reader, writer = await asyncio.open_connection(parts.hostname, port)
        try:
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/plain\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            reply = _Reply()
            parser = httptools.HttpResponseParser(reply)
            while not reply.done:
                data = await reader.read(65536)
                if not data:
                    break
                parser.feed_data(data)
            status = parser.get_status_code()
            if not reply.done or status != 200:
                raise OSError(f"the engine answered /metrics with {status or 'a broken reply'}")
            return reply.body.decode("utf-8", "replace")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(fetch(), timeout)
    except (httptools.HttpParserError, ValueError, TimeoutError) as exc:
        raise OSError(str(exc) or type(exc).__name__) from exc


class GaugePublisher:
    """One EMF line per interval: RequestsInFlight always, the engine's gauges when it answers."""

    def __init__(
        self,
        stack: str,
        inflight: Callable[[], int],
        *,
        engine_url: str | None = None,
        engine_version: str | None = None,
        interval: float = 10.0,
        fd: int = 1,
        enabled: bool = True,
        scrape_timeout: float = 2.0,
    ) -> None:
        self.enabled = enabled
        self._stack = stack
        self._inflight = inflight
        self._engine_url = engine_url
        self._kv_names = kv_cache_names(engine_version)
        self._fd = fd
        self._timeout = min(scrape_timeout, interval)
        self._periodic = Periodic(interval, self._tick)
        self._engine_failing = False
        # A label for reading the log by eye; it is not a dimension, so it mints no metric series.
        self._host = socket.gethostname()

    async def sample(self) -> dict[str, float]:
        values: dict[str, float] = {names.REQUESTS_IN_FLIGHT: float(self._inflight())}
        if self._engine_url is None:
            return values
        try:
            engine = parse(await scrape(self._engine_url, self._timeout), self._kv_names)
        except (OSError, ValueError) as exc:
            if not self._engine_failing:
                log.warning("cannot read the engine's metrics at %s: %s", self._engine_url, exc)
            self._engine_failing = True
            return values
        if self._engine_failing:
            log.info("the engine's metrics at %s answer again", self._engine_url)
        self._engine_failing = False
        for name, value in (
            (names.ENGINE_REQUESTS_WAITING, engine.waiting),
            (names.ENGINE_REQUESTS_RUNNING, engine.running),
            (names.ENGINE_KV_CACHE_USAGE, engine.kv_cache_percent),
        ):
            if value is not None:
                values[name] = value
        return values

    def line(self, values: dict[str, float], stamp_ms: int | None = None) -> bytes:
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000) if stamp_ms is None else stamp_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": names.NAMESPACE,
                        "Dimensions": [[names.STACK_DIMENSION]],
                        "Metrics": [{"Name": n, "Unit": names.UNITS[n]} for n in values],
                    }
                ],
            },
            names.STACK_DIMENSION: self._stack,
            "Host": self._host,
            **values,
        }
        return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)

    async def publish(self) -> None:
        line = self.line(await self.sample())
        # One write(2) per line keeps it whole next to the access log's lines.
        with contextlib.suppress(OSError):
            os.write(self._fd, line)

    async def start(self) -> None:
        if self.enabled:
            self._periodic.start()

    async def _tick(self) -> None:
        try:
            await self.publish()
        except Exception:
            # A bug here must not end the loop: scaling would lose its signal for good.
            log.exception("publishing the load gauges failed")

    async def close(self) -> None:
        await self._periodic.close()
