"""Usage per client as CloudWatch embedded metric format (EMF) lines on stdout, one per client per flush.

No API call per request: the task's log driver (awslogs: PutLogEvents) ships stdout to CloudWatch
Logs, which extracts the metrics; the `x-amzn-logs-format: json/emf` header is optional, per
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html
Each line carries both dimension sets of CONTRACTS.md, ["Stack"] and ["Stack", "Client"], so the
deployment's totals are the Sum over its clients' lines. TimeToFirstToken (one value per streamed
request, sampled like Latency) is declared only on lines that have one: EMF requires every declared
metric's member at the root of the document. Document structure as AWS specifies it:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
(root `_aws` {Timestamp in ms, CloudWatchMetrics: [{Namespace, Dimensions, Metrics: [{Name, Unit}]}]};
a metric's value is a number or an array of at most 100 numbers).
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import orjson

from inference_server import metric_names as names
from inference_server.periodic import Periodic

NAMESPACE = names.NAMESPACE
_MAX_VALUES = 100  # EMF's limit on the values of one metric in one document

_METRICS = tuple({"Name": n, "Unit": names.UNITS[n]} for n in names.USAGE_METRICS)
_TTFT = {"Name": names.TIME_TO_FIRST_TOKEN, "Unit": names.UNITS[names.TIME_TO_FIRST_TOKEN]}


def _sample(values: list[float], value: float, seen: int) -> None:
    """A uniform sample of at most 100 values (reservoir sampling), so the percentiles CloudWatch
    computes from them are unbiased however busy the interval was; `seen` counts this value."""
    if len(values) < _MAX_VALUES:
        values.append(value)
    else:
        slot = random.randrange(seen)  # noqa: S311 - sampling, not security
        if slot < _MAX_VALUES:
            values[slot] = value


class _Totals:
    __slots__ = ("completion", "errors", "latencies", "prompt", "requests", "streams", "ttfts")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.prompt = 0
        self.completion = 0
        self.latencies: list[float] = []
        self.streams = 0
        self.ttfts: list[float] = []


class UsageMetrics:
    """Aggregates per client in memory; `flush` writes one EMF line per client seen since the last."""

    def __init__(self, stack: str, *, interval: float = 60.0, fd: int = 1, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stack = stack
        self._fd = fd
        self._totals: dict[str, _Totals] = {}
        self._periodic = Periodic(interval, self._tick)

    def record(
        self,
        client: str,
        status: int,
        latency: float,
        prompt: int | None,
        completion: int | None,
        error: bool,
        ttft: float | None = None,
    ) -> None:
        if not self.enabled:
            return
        totals = self._totals.get(client)
        if totals is None:
            totals = self._totals[client] = _Totals()
        totals.requests += 1
        if error or status >= 400:
            totals.errors += 1
        if prompt:
            totals.prompt += prompt
        if completion:
            totals.completion += completion
        _sample(totals.latencies, latency, totals.requests)
        if ttft is not None:
            totals.streams += 1
            _sample(totals.ttfts, ttft, totals.streams)

    def lines(self) -> list[bytes]:
        totals, self._totals = self._totals, {}
        stamp = int(time.time() * 1000)
        out = []
        for client, t in totals.items():
            document: dict[str, object] = {
                "_aws": {
                    "Timestamp": stamp,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": [["Stack"], ["Stack", "Client"]],
                            "Metrics": [*_METRICS, _TTFT] if t.ttfts else list(_METRICS),
                        }
                    ],
                },
                "Stack": self._stack,
                "Client": client,
                "Requests": t.requests,
                "Errors": t.errors,
                "PromptTokens": t.prompt,
                "CompletionTokens": t.completion,
                "Latency": [round(value * 1000, 3) for value in t.latencies],
            }
            if t.ttfts:
                document[names.TIME_TO_FIRST_TOKEN] = [round(value * 1000, 3) for value in t.ttfts]
            out.append(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
        return out

    def flush(self) -> None:
        for line in self.lines():
            # One write(2) per line keeps lines whole next to the access log's.
            with contextlib.suppress(OSError):
                os.write(self._fd, line)

    async def start(self) -> None:
        if self.enabled:
            self._periodic.start()

    async def _tick(self) -> None:
        self.flush()

    async def close(self) -> None:
        await self._periodic.close()
        if self.enabled:
            self.flush()
