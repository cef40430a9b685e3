"""The gateway as a process: flags and environment, and SIGTERM draining in-flight streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, wait_for_url

from inference_server.config import Settings, load, to_environ

ROOT = Path(__file__).resolve().parents[2]


def test_flags_override_environment_and_defaults() -> None:
    env = {
        "GATEWAY_PORT": "9000",
        "GATEWAY_UPSTREAM": "external",
        "GATEWAY_API_KEYS": "a, b,,c",
        "GATEWAY_SAGEMAKER_CONTRACT": "true",
        "GATEWAY_FIRST_BYTE_TIMEOUT": "2.5",
    }
    settings = load(["--port", "9100", "--upstream-url", "https://api.example.com/v1"], env)
    assert settings.port == 9100
    assert settings.upstream == "external"
    assert settings.upstream_url == "https://api.example.com/v1"
    assert settings.api_keys == ("a", "b", "c")
    assert settings.sagemaker_contract is True
    assert settings.first_byte_timeout == 2.5
    assert load([], {}).port == 8080
    assert load(["--no-log-requests"], {"GATEWAY_LOG_REQUESTS": "1"}).log_requests is False


def test_settings_round_trip_through_the_environment() -> None:
    settings = load(
        ["--api-keys", "k1,k2", "--image-domains", "a.com", "--workers", "2", "--port", "1234"], {}
    )
    assert load([], to_environ(settings)) == settings


@pytest.mark.parametrize(
    "argv", [["--upstream", "ollama"], ["--upstream", "sagemaker"], ["--port", "not-a-number"]]
)
def test_bad_settings_stop_with_a_message(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        load(argv, {})


def test_defaults_listen_on_8080() -> None:
    assert Settings().port == 8080


def _gateway_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def gateway_process(
    fresh_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inference_server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--upstream-url",
                fresh_upstream.url,
                "--api-keys",
                KEY,
                "--shutdown-grace",
                "20",
            ],
            env=_gateway_env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        url = wait_for_url(process, stderr_path, attempts=1500)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_sigterm_drains_in_flight_streams_then_exits(
    gateway_process: tuple[subprocess.Popen[bytes], str], fresh_upstream: FakeUpstream
) -> None:
    process, url = gateway_process
    body = {"model": "m", "messages": [], "stream": True, "fake_chunks": 8, "fake_interval": 0.15}
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as response,
    ):
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert "tok0" in first
        process.send_signal(signal.SIGTERM)
        # New connections are refused while the stream goes on.
        refused = False
        for _ in range(500):
            try:
                httpx.get(url + "/health", timeout=1)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # Refused, or reset if the kernel had queued the connection just before the close.
                refused = True
                break
            threading.Event().wait(0.01)
        assert refused
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    assert sum('"content":"tok' in line for line in [first, *rest]) == 8
    assert process.wait(20) == 0
