"""Limits per caller: requests per minute and tokens per minute (token buckets), requests in flight.

Every limit is off unless configured (0 or None): a default would silently cap production. The
numbers are per task: N tasks behind the load balancer admit up to N times each limit (see README).
"""

from __future__ import annotations

import math
import time

from inference_server.errors import GatewayError


class Limiter:
    """One caller's budgets; `acquire` raises a 429 GatewayError with a retry-after."""

    __slots__ = (
        "_rpm",
        "_rpm_stamp",
        "_rpm_tokens",
        "_tpm",
        "_tpm_stamp",
        "_tpm_tokens",
        "concurrency",
        "inflight",
    )

    def __init__(
        self, rpm: int | None = None, tpm: int | None = None, concurrency: int | None = None
    ) -> None:
        now = time.monotonic()
        self._rpm = rpm or 0
        self._rpm_tokens = float(self._rpm)
        self._rpm_stamp = now
        self._tpm = tpm or 0
        self._tpm_tokens = float(self._tpm)
        self._tpm_stamp = now
        self.concurrency = concurrency or 0
        self.inflight = 0

    def update(self, rpm: int | None, tpm: int | None, concurrency: int | None) -> None:
        """New limits from a refreshed client list; what was spent stays spent."""
        rpm, tpm = rpm or 0, tpm or 0
        if rpm != self._rpm:
            self._rpm_tokens = min(self._rpm_tokens, float(rpm)) if self._rpm else float(rpm)
            self._rpm = rpm
        if tpm != self._tpm:
            self._tpm_tokens = min(self._tpm_tokens, float(tpm)) if self._tpm else float(tpm)
            self._tpm = tpm
        self.concurrency = concurrency or 0

    def acquire(self) -> None:
        if self.concurrency > 0 and self.inflight >= self.concurrency:
            raise GatewayError(
                429,
                f"too many concurrent requests (limit {self.concurrency})",
                code="concurrency_limit_exceeded",
                retry_after=1,
            )
        now = time.monotonic()
        if self._tpm > 0:
            rate = self._tpm / 60.0
            tokens = min(float(self._tpm), self._tpm_tokens + (now - self._tpm_stamp) * rate)
            self._tpm_tokens, self._tpm_stamp = tokens, now
            if tokens <= 0.0:
                raise GatewayError(
                    429,
                    f"token rate limit reached ({self._tpm} tokens per minute)",
                    code="token_rate_limit_exceeded",
                    retry_after=max(1, math.ceil((1.0 - tokens) / rate)),
                )
        if self._rpm > 0:
            rate = self._rpm / 60.0
            tokens = min(float(self._rpm), self._rpm_tokens + (now - self._rpm_stamp) * rate)
            self._rpm_stamp = now
            if tokens < 1.0:
                self._rpm_tokens = tokens
                raise GatewayError(
                    429,
                    f"rate limit reached ({self._rpm} requests per minute)",
                    code="rate_limit_exceeded",
                    retry_after=max(1, math.ceil((1.0 - tokens) / rate)),
                )
            self._rpm_tokens = tokens - 1.0
        self.inflight += 1

    def release(self) -> None:
        if self.inflight > 0:
            self.inflight -= 1

    def spend_tokens(self, count: int) -> None:
        """Tokens are known only from the reply's usage: they are charged after it, and the bucket may
        go below zero, which refuses the caller's next requests until it refills."""
        if self._tpm > 0 and count > 0:
            now = time.monotonic()
            rate = self._tpm / 60.0
            tokens = min(float(self._tpm), self._tpm_tokens + (now - self._tpm_stamp) * rate)
            self._tpm_tokens, self._tpm_stamp = tokens - count, now

    @property
    def active(self) -> bool:
        return bool(self._rpm or self._tpm or self.concurrency)


class KeyLimits:
    """The single-key mode's limits (GATEWAY_RPM_PER_KEY, GATEWAY_CONCURRENCY_PER_KEY), one Limiter a key."""

    def __init__(self, rpm: int, concurrency: int) -> None:
        self._rpm = rpm
        self._concurrency = concurrency
        self._limiters: dict[str, Limiter] = {}

    def limiter(self, key: str) -> Limiter | None:
        if not (self._rpm or self._concurrency):
            return None
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = Limiter(self._rpm, None, self._concurrency)
        return limiter

    def acquire(self, key: str) -> None:
        limiter = self.limiter(key)
        if limiter is not None:
            limiter.acquire()

    def release(self, key: str) -> None:
        limiter = self._limiters.get(key)
        if limiter is not None:
            limiter.release()
