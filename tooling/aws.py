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


@cache
def _single_attempt(service: str, region: str, read_timeout: int) -> Any:
    config = CONFIG.merge(Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout))
    return _session().client(service, region_name=region, config=config)


def single_attempt_client(service: str, region: str, *, read_timeout: int) -> Any:
    """A client that sends each call once and waits `read_timeout` s for its answer: for calls that
    must not run twice (a synchronous Lambda Invoke whose function does the work each time)."""
    with _lock:
        return _single_attempt(service, region, read_timeout)


def account_id(region: str) -> str:
    return client("sts", region).get_caller_identity()["Account"]


def reset() -> None:
    """Forget clients, e.g. after the environment changed (tests point at a new emulator)."""
    _client.cache_clear()
    _single_attempt.cache_clear()
    _session.cache_clear()
