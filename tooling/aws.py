"""AWS clients: one place that decides retries, and nothing else.

`AWS_ENDPOINT_URL` (read by botocore itself) is the only switch between AWS and a local emulator; there
is no emulator-specific code anywhere. Throttling and transient errors are retried by botocore's
adaptive mode, which also slows the request rate when CloudFormation throttles parallel deploys.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10}, user_agent_extra="deployctl")
_lock = threading.Lock()


@cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def _client(service: str, region: str) -> Any:
    return _session().client(service, region_name=region, config=CONFIG)


def client(service: str, region: str) -> Any:
    """A shared client (clients are thread-safe once made; making them is not, hence the lock)."""
    with _lock:
        return _client(service, region)


def account_id(region: str) -> str:
    return client("sts", region).get_caller_identity()["Account"]


def reset() -> None:
    """Forget clients, e.g. after the environment changed (tests point at a new emulator)."""
    _client.cache_clear()
    _session.cache_clear()
