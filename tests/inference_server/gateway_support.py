"""Helpers shared by the gateway's tests: the gateway run in a thread on an ephemeral port."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from openai import OpenAI

from inference_server.accesslog import AccessLog
from inference_server.app import Gateway, build_gateway
from inference_server.config import Settings
from inference_server.server import protocol_class

KEY = "sk-test-0123456789abcdef"


class RunningGateway:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.metrics_server.port}/metrics"

    def client(self, api_key: str = KEY, **kwargs: Any) -> OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 20)
        return OpenAI(base_url=self.url + "/v1", api_key=api_key, **kwargs)

    def start(self) -> RunningGateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.gateway,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            http=protocol_class(self.gateway.settings.max_header_bytes),
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert self._thread.is_alive(), "the gateway failed to start"
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)


def settings_for(upstream_url: str, **overrides: Any) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        upstream="vllm",
        upstream_url=upstream_url,
        api_keys=(KEY,),
        connect_retries=1,
        connect_timeout=2.0,
        first_byte_timeout=10.0,
        keepalive_interval=15.0,
        metrics_port=0,
        ready_cache_seconds=0.0,
        usage_metrics=False,
        gauge_metrics=False,
    )
    return replace(base, **overrides)


@contextmanager
def running(settings: Settings, log_path: Path | None = None) -> Iterator[RunningGateway]:
    gateway = build_gateway(settings)
    fd = None
    if log_path is not None:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        gateway.access_log = AccessLog(True, fd)
    else:
        gateway.access_log = AccessLog(False)
    running_gateway = RunningGateway(gateway).start()
    try:
        yield running_gateway
    finally:
        running_gateway.stop()
        if fd is not None:
            os.close(fd)


def wait_for_url(process: subprocess.Popen[bytes], stderr_path: Path, *, attempts: int) -> str:
    """The URL a gateway subprocess announces (it binds port 0); checked every 10 ms, `attempts` times."""
    pattern = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
    pause = threading.Event()
    for _ in range(attempts):
        found = pattern.search(stderr_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        assert process.poll() is None, stderr_path.read_text()
        pause.wait(0.01)
    raise AssertionError("the gateway did not start: " + stderr_path.read_text())
