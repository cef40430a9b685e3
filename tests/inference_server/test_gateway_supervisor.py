"""The vLLM image's entrypoint, with a fake engine command in place of `vllm serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gateway_fake_upstream import closed_port
from gateway_support import wait_for_url

from inference_server.supervisor import engine_command

ROOT = Path(__file__).resolve().parents[2]
FAKE_ENGINE = Path(__file__).with_name("gateway_fake_engine.py")


def test_engine_command_keeps_vllm_on_loopback() -> None:
    argv = engine_command(
        ["my/model", "--host", "0.0.0.0", "--max-model-len", "4096"], {"ENGINE_PORT": "8001"}
    )
    assert argv[:3] == ["vllm", "serve", "my/model"]
    # argparse keeps the last value: ours, after anything the arguments said.
    assert argv[-4:] == ["--host", "127.0.0.1", "--port", "8001"]
    assert engine_command([], {"ENGINE_MODEL": "org/m"})[:3] == ["vllm", "serve", "org/m"]


def test_the_stack_describes_the_model_with_environment_variables() -> None:
    env = {
        "ENGINE_MODEL": "meta-llama/Llama-3.1-8B-Instruct",
        "ENGINE_SERVED_MODEL_NAME": "llama-3.1-8b",
        "ENGINE_ARGS": '{"enable_prefix_caching":true,"enforce_eager":false,"max_model_len":8192}',
    }
    assert engine_command([], env) == [
        "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama-3.1-8b",
        "--enable-prefix-caching", "--no-enforce-eager", "--max-model-len", "8192",
        "--allowed-media-domains", "media-fetch-disabled.invalid",
        "--host", "127.0.0.1", "--port", "8000",
    ]  # fmt: skip


def test_the_token_secret_reaches_the_engine_only() -> None:
    from inference_server.supervisor import engine_environment

    env = engine_environment({"HF_TOKEN_SECRET": "hf/token"}, read_secret=lambda name: f"value-of-{name}")
    assert env["HF_TOKEN"] == "value-of-hf/token"
    assert (
        engine_environment({"HF_TOKEN_SECRET": "x", "HF_TOKEN": "given"}, read_secret=lambda _: "no")[
            "HF_TOKEN"
        ]
        == "given"
    )


@dataclass
class Box:
    process: subprocess.Popen[bytes]
    url: str
    argv_file: Path
    die_file: Path
    stderr: Path


@pytest.fixture
def box(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Box]:
    argv_file, die_file, stderr_path = tmp_path / "argv", tmp_path / "die", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AWS_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "ENGINE_PORT": str(closed_port()),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": "0",
            "GATEWAY_API_KEYS": "sk-box",
            "ENGINE_COMMAND": f"{sys.executable} {FAKE_ENGINE} --host {{host}} --port {{port}}",
            "FAKE_ENGINE_ARGV": str(argv_file),
            "FAKE_ENGINE_DIE_FILE": str(die_file),
            "SUPERVISOR_GRACE": "10",
        }
    )
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "inference_server.supervisor", *request.param],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        url = wait_for_url(process, stderr_path, attempts=2000)
        yield Box(process, url, argv_file, die_file, stderr_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _wait_ready(url: str, path: str) -> int:
    pause = threading.Event()
    status = 0
    for _ in range(1000):
        status = httpx.get(url + path, timeout=5).status_code
        if status == 200:
            break
        pause.wait(0.02)
    return status


@pytest.mark.slow
@pytest.mark.parametrize("box", [["serve", "--max-model-len", "4096"]], indirect=True)
def test_serve_runs_the_sagemaker_contract_and_stops_cleanly_on_sigterm(box: Box) -> None:
    assert _wait_ready(box.url, "/ping") == 200
    reply = httpx.post(box.url + "/invocations", json={"model": "m", "messages": []}, timeout=10)
    assert reply.json()["object"] == "chat.completion"
    # `serve` itself is SageMaker's, not the engine's; the rest goes to the engine.
    assert box.argv_file.read_text().split("\n")[-2:] == ["--max-model-len", "4096"]
    box.process.send_signal(signal.SIGTERM)
    assert box.process.wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(box.url + "/health", timeout=2)


@pytest.mark.slow
@pytest.mark.parametrize("box", [[]], indirect=True)
def test_engine_death_stops_the_gateway_and_the_container(box: Box) -> None:
    assert _wait_ready(box.url, "/ready") == 200
    # Without `serve` the SageMaker contract is off: /invocations does not exist, the API needs a key.
    assert httpx.post(box.url + "/invocations", json={}, timeout=10).status_code == 404
    models = httpx.get(box.url + "/v1/models", headers={"Authorization": "Bearer sk-box"}, timeout=10)
    assert models.json()["data"][0]["id"] == "fake-model"
    box.die_file.write_text("crash")
    assert box.process.wait(30) == 3
    assert "the engine exited with 3" in box.stderr.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(box.url + "/health", timeout=2)
