"""Per-key limits: requests per minute (a token bucket) and requests in flight."""

from __future__ import annotations

import math
import time

from inference_server.errors import GatewayError


class _Bucket:
    __slots__ = ("inflight", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.inflight = 0


class KeyLimits:
    """Checked once per request; `acquire` raises a 429 GatewayError with a retry-after."""

    def __init__(self, rpm: int, concurrency: int) -> None:
        self._rpm = rpm
        self._rate = rpm / 60.0
        self._concurrency = concurrency
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> None:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._rpm), now)
        if self._concurrency > 0 and bucket.inflight >= self._concurrency:
            raise GatewayError(
                429,
                f"too many concurrent requests for this key (limit {self._concurrency})",
                code="concurrency_limit_exceeded",
                retry_after=1,
            )
        if self._rpm > 0:
            tokens = min(float(self._rpm), bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
            if tokens < 1.0:
                bucket.tokens = tokens
                raise GatewayError(
                    429,
                    f"rate limit reached for this key ({self._rpm} requests per minute)",
                    code="rate_limit_exceeded",
                    retry_after=max(1, math.ceil((1.0 - tokens) / self._rate)),
                )
            bucket.tokens = tokens - 1.0
        bucket.inflight += 1

    def release(self, key: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.inflight > 0:
            bucket.inflight -= 1
