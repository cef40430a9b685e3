"""Named clients, each with its own key secret and limits, from the SSM parameter GATEWAY_CLIENTS_PARAMETER.

The parameter (a String, written by the deployment's stack) holds
{"clients": [{"name", "secret_arn", "requests_per_minute", "tokens_per_minute", "concurrent_requests"}]}.
It and every client's secret (AWSCURRENT, AWSPREVIOUS, AWSPENDING) are read again every 30 s, so a
client removed from the list stops working within a minute without a restart. A client whose secret
cannot be read is dropped (fail closed); a parameter that cannot be read keeps the last good list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from inference_server.auth import secret_fetcher

log = logging.getLogger("inference_server.clients")

# A client's name becomes a CloudWatch dimension value and a log field: keep it plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    requests_per_minute: int | None
    tokens_per_minute: int | None
    concurrent_requests: int | None


class ClientList(list[tuple[str, str]]):
    """(key, client name) pairs for the KeyStore, plus every client's limits."""

    def __init__(self, pairs: list[tuple[str, str]], limits: dict[str, ClientLimits]) -> None:
        super().__init__(pairs)
        self.limits = limits


def _limit(entry: dict[str, Any], name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number or null")
    return value or None


def parse_clients(text: str) -> list[tuple[str, str, ClientLimits]]:
    """(name, secret id, limits) per client; a malformed entry is skipped (and logged by name)."""
    data = orjson.loads(text)
    entries = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('the clients parameter must be {"clients": [...]}')
    out: list[tuple[str, str, ClientLimits]] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name, secret = entry.get("name"), entry.get("secret_arn")
        if not isinstance(name, str) or not _NAME.match(name) or name in seen or not isinstance(secret, str):
            log.warning("skipping a malformed client entry %r", name if isinstance(name, str) else None)
            continue
        try:
            limits = ClientLimits(
                _limit(entry, "requests_per_minute"),
                _limit(entry, "tokens_per_minute"),
                _limit(entry, "concurrent_requests"),
            )
        except ValueError as exc:
            log.warning("skipping client %s: %s", name, exc)
            continue
        seen.add(name)
        out.append((name, secret, limits))
    return out


def clients_fetcher(
    ssm: Callable[[], Any], secrets: Callable[[], Any], parameter: str
) -> Callable[[], ClientList]:
    """Reads the parameter, then each client's secret stages; runs in a worker thread."""
    state: dict[str, Any] = {}

    def fetch() -> ClientList:
        if "ssm" not in state:
            state["ssm"], state["secrets"] = ssm(), secrets()
        value = state["ssm"].get_parameter(Name=parameter)["Parameter"]["Value"]
        pairs: list[tuple[str, str]] = []
        limits: dict[str, ClientLimits] = {}
        for name, secret_id, client_limits in parse_clients(value):
            try:
                keys = secret_fetcher(state["secrets"], secret_id)()
            except Exception as exc:
                # Fail closed: a secret we cannot read (deleted, access revoked) admits nobody.
                log.warning("client %s dropped: its secret is unreadable (%s)", name, type(exc).__name__)
                continue
            if not keys:
                continue
            pairs.extend((key, name) for key in keys)
            limits[name] = client_limits
        return ClientList(pairs, limits)

    return fetch
