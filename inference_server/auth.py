"""Client API keys: accepted keys are held only as SHA-256 digests and compared in constant time.

In AWS the keys are the versions of one Secrets Manager secret: AWSCURRENT and AWSPREVIOUS, plus
AWSPENDING while a rotation runs, so a client holding either side of a rotation keeps working. They
are refreshed in the background, and once (rate-limited) when a request brings a key we do not
know, so a freshly rotated key works on its first request instead of after the next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("inference_server.auth")

STAGES = ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING")


def digest(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


def key_id(key_digest: bytes) -> str:
    """A short, stable, non-reversible name for a key, for logs and limits."""
    return key_digest[:6].hex()


def keys_from_secret_string(value: str) -> list[str]:
    """A secret holds one key as plain text, or JSON: a list of keys, or {"api_key"} / {"api_keys"}."""
    text = value.strip()
    if text and text[0] in "[{":
        try:
            data: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [text]
        if isinstance(data, dict):
            data = data.get("api_keys", data.get("api_key", []))
        if isinstance(data, str):
            return [data]
        if isinstance(data, list):
            return [k for k in data if isinstance(k, str) and k]
        return []
    return [text] if text else []


def keys_from_file(path: str) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class KeyStore:
    """Accepted key digests and whom each belongs to, swapped whole on refresh so readers never see
    half a set. `fetch` returns keys (named by their key id) or (key, client name) pairs."""

    def __init__(
        self,
        static_keys: Iterable[str] = (),
        fetch: Callable[[], Iterable[str | tuple[str, str]]] | None = None,
        *,
        refresh_interval: float = 60.0,
        min_refresh_interval: float = 5.0,
        on_refresh: Callable[[Any], None] | None = None,
    ) -> None:
        self._static = tuple(_entry(k) for k in static_keys)
        self._entries: tuple[tuple[bytes, str], ...] = self._static
        self._fetch = fetch
        self._refresh_interval = refresh_interval
        self._min_refresh_interval = min_refresh_interval
        self._on_refresh = on_refresh
        self._last_refresh = float("-inf")
        self._inflight: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._static) or self._fetch is not None

    def set_on_refresh(self, callback: Callable[[Any], None]) -> None:
        """Called on the event loop with what each successful fetch returned (the clients' limits)."""
        self._on_refresh = callback

    def _match(self, candidate: bytes) -> str | None:
        found: str | None = None
        # Every accepted digest is compared, so timing reveals neither which key matched nor where.
        for accepted, name in self._entries:
            if hmac.compare_digest(candidate, accepted):
                found = name
        return found

    async def check(self, presented: str) -> str | None:
        """The caller's name (a key id, or a client's name) for an accepted key, or None."""
        candidate = digest(presented)
        name = self._match(candidate)
        if name is not None or self._fetch is None:
            return name
        # An unknown key may be a just-rotated one: refresh once, rate-limited, and share a refresh
        # already running. Never wait for the next allowed refresh: every unknown key would then
        # wait seconds for its 401 (they used to wait ~5 s).
        if self._inflight is None and time.monotonic() - self._last_refresh < self._min_refresh_interval:
            return None
        await self.refresh()
        return self._match(candidate)

    def _load(self) -> tuple[tuple[tuple[bytes, str], ...], Any]:
        assert self._fetch is not None
        fetched = self._fetch()
        entries = tuple(_entry(k) if isinstance(k, str) else (digest(k[0]), k[1]) for k in fetched)
        return self._static + entries, fetched

    async def refresh(self) -> None:
        """Fetch the keys again; concurrent callers share one fetch."""
        if self._fetch is None:
            return
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        loop = asyncio.get_running_loop()
        self._inflight = loop.create_future()
        self._last_refresh = time.monotonic()
        try:
            self._entries, fetched = await asyncio.to_thread(self._load)
            if self._on_refresh is not None:
                self._on_refresh(fetched)
        except Exception as exc:  # keep serving the keys we have; a failed refresh is not an outage
            log.warning("key refresh failed: %s", type(exc).__name__)
        finally:
            self._inflight.set_result(None)
            self._inflight = None

    async def start(self) -> None:
        if self._fetch is None:
            return
        await self.refresh()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            await self.refresh()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _entry(key: str) -> tuple[bytes, str]:
    key_digest = digest(key)
    return key_digest, key_id(key_digest)


def secret_fetcher(client: Any, secret_id: str) -> Callable[[], list[str]]:
    """Reads every live stage of the secret; a missing AWSPENDING/AWSPREVIOUS is normal."""

    def fetch() -> list[str]:
        keys: list[str] = []
        errors = 0
        for stage in STAGES:
            try:
                value = client.get_secret_value(SecretId=secret_id, VersionStage=stage)
            except client.exceptions.ResourceNotFoundException:
                if stage == "AWSCURRENT":
                    raise
                continue
            except client.exceptions.InvalidRequestException:
                errors += 1
                continue
            keys.extend(keys_from_secret_string(value.get("SecretString") or ""))
        if not keys and errors:
            raise RuntimeError("no readable version of the key secret")
        return keys

    return fetch


def read_secret_string(client: Any, secret_id: str) -> str:
    """AWSCURRENT of a secret, for the provider key; the value is never logged."""
    value = client.get_secret_value(SecretId=secret_id)
    keys = keys_from_secret_string(value.get("SecretString") or "")
    if not keys:
        raise RuntimeError("the provider key secret is empty")
    return keys[0]
