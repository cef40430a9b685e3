"""One JSON line per request on stdout. Keys never appear here: only the key id (a digest prefix)."""

from __future__ import annotations

import contextlib
import os
import time

import orjson

_OPT = orjson.OPT_APPEND_NEWLINE


class AccessLog:
    def __init__(self, enabled: bool = True, fd: int = 1) -> None:
        self.enabled = enabled
        self._fd = fd

    def write(
        self,
        *,
        request_id: str,
        key_id: str | None,
        method: str,
        path: str,
        model: str | None,
        status: int,
        latency: float,
        ttft: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        error: str | None = None,
        outcome: str = "complete",
    ) -> None:
        if not self.enabled:
            return
        line = orjson.dumps(
            {
                "ts": round(time.time(), 3),
                "request_id": request_id,
                "key_id": key_id,
                "method": method,
                "path": path,
                "model": model,
                "status": status,
                "latency_ms": round(latency * 1000, 3),
                "ttft_ms": None if ttft is None else round(ttft * 1000, 3),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "error": error,
                # What really happened: a stream cut after its 200 is not a success.
                "outcome": outcome,
            },
            option=_OPT,
        )
        # One write(2) per line keeps lines whole when several workers share the stream.
        with contextlib.suppress(OSError):
            os.write(self._fd, line)
