"""The smoke checks (templates/runtime/smoke_probe.py) and the probe's Lambda handler, run for real.

Against the gateway (in this process, on 127.0.0.1) in front of the fake upstream engine, the way the
probe meets a stack's load balancer; and against a small scripted HTTP server where exact statuses and
their order matter (retries). The handler is called as Lambda calls it: an event and a context whose
get_remaining_time_in_millis counts down.
"""

from __future__ import annotations

import ast
import contextlib
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from templates.runtime import smoke_probe
from tests.inference_server.gateway_fake_upstream import FakeUpstream
from tests.inference_server.gateway_support import KEY, RunningGateway, running, settings_for

pytestmark = pytest.mark.slow
SOURCE = Path(smoke_probe.__file__)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    with contextlib.suppress(RuntimeError):
        fake.stop()


@pytest.fixture
def gateway(upstream: FakeUpstream) -> Iterator[RunningGateway]:
    with running(settings_for(upstream.url)) as found:
        yield found


def context(seconds: float = 900) -> SimpleNamespace:
    return SimpleNamespace(get_remaining_time_in_millis=lambda: int(seconds * 1000))


def event(url: str, key: str | None = KEY, **extra: Any) -> dict[str, Any]:
    return {
        "deployment": "dev/chat",
        "url": url,
        "model": "fake-model",
        "key": key,
        "key_source": "Secrets Manager AWSCURRENT",
        "images": False,
        "retries": 0,
        **extra,
    }


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_the_handler_passes_every_check_of_a_healthy_endpoint(
    gateway: RunningGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    report = smoke_probe.handler(event(gateway.url + "/", images=True), context())
    checks = by_name(report)
    assert list(checks) == ["health", "models", "chat", "stream", "unauthorised", "image"]
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["health"]["detail"] == "HTTP 200"
    assert checks["models"]["detail"] == "fake-model"
    assert checks["stream"]["first_token_seconds"] is not None
    assert checks["stream"]["detail"] == "4 chunks: 'tok0 tok1 tok2 tok3'"
    assert checks["unauthorised"]["detail"] == "HTTP 401 without a valid key"
    assert report["url"] == gateway.url  # without the trailing slash
    assert {k: report[k] for k in ("deployment", "model", "key_source")} == {
        "deployment": "dev/chat",
        "model": "fake-model",
        "key_source": "Secrets Manager AWSCURRENT",
    }
    # The key went out as a Bearer header and nowhere else: not in the answer, not on stdout or stderr.
    assert KEY not in json.dumps(report)
    out = capsys.readouterr()
    assert out.out == out.err == ""


def test_a_wrong_key_fails_the_checks_as_the_sdk_names_it(gateway: RunningGateway) -> None:
    checks = by_name(smoke_probe.handler(event(gateway.url, key="sk-wrong"), context()))
    assert checks["health"]["ok"]  # /health takes no key
    for name in ("models", "chat", "stream"):
        assert not checks[name]["ok"]
        assert checks[name]["detail"].startswith("AuthenticationError: Error code: 401"), checks[name]
    assert checks["unauthorised"]["ok"]


def test_without_a_key_the_refused_key_check_is_skipped(upstream: FakeUpstream) -> None:
    with running(settings_for(upstream.url, api_keys=(), allow_anonymous=True)) as open_gateway:
        checks = by_name(smoke_probe.handler(event(open_gateway.url, key=None), context()))
    assert list(checks) == ["health", "models", "chat", "stream"]
    assert all(c["ok"] for c in checks.values()), checks


def test_an_unknown_model_and_a_dead_engine_fail_their_checks(
    gateway: RunningGateway, upstream: FakeUpstream
) -> None:
    checks = by_name(smoke_probe.handler({**event(gateway.url), "model": "other-model"}, context()))
    assert checks["models"]["detail"] == "AssertionError: other-model not among ['fake-model']"
    upstream.stop()
    checks = by_name(smoke_probe.handler(event(gateway.url), context()))
    assert checks["health"]["ok"]  # the gateway itself lives
    assert not checks["chat"]["ok"] and not checks["stream"]["ok"]
    assert checks["chat"]["detail"].split(":")[0] in {"InternalServerError", "APIStatusError"}


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.paths.append(self.path)
        status, body = server.script.pop(0) if server.script else (200, {"data": [{"id": "fake-model"}]})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.paths = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_retryable_statuses_are_retried_with_backoff_and_others_are_not(scripted: Any) -> None:
    base = f"http://127.0.0.1:{scripted.server_address[1]}"
    pauses: list[float] = []
    api = smoke_probe.Endpoint(base, KEY, 5, retries=2, sleep=pauses.append)
    scripted.script = [(503, {"error": {"message": "warming up"}}), (429, {}), (200, {"data": []})]
    assert api.json("/v1/models") == {"data": []}
    assert pauses == [0.5, 1.0] and len(scripted.paths) == 3
    scripted.script, scripted.paths, pauses[:] = [(400, {"error": {"message": "bad"}})], [], []
    with pytest.raises(smoke_probe.CheckFailed) as failed:
        api.json("/v1/models")
    assert (failed.value.kind, str(failed.value)) == ("BadRequestError", "Error code: 400 - bad")
    assert pauses == [] and len(scripted.paths) == 1
    # Out of retries: the last failure is the check's.
    scripted.script, scripted.paths = [(502, {})] * 3, []
    with pytest.raises(smoke_probe.CheckFailed) as failed:
        api.json("/v1/models")
    assert failed.value.kind == "InternalServerError" and len(scripted.paths) == 3


def test_a_key_echoed_by_the_endpoint_stays_out_of_the_report(scripted: Any) -> None:
    base = f"http://127.0.0.1:{scripted.server_address[1]}"
    scripted.script = [(400, {"error": {"message": f"bad header Bearer {KEY}"}})] * 10
    checks = smoke_probe.run(base, "fake-model", KEY, images=False, retries=0)
    failed = [c for c in checks if c["name"] in ("health", "models")]
    assert all(not c["ok"] and "Bearer ***" in c["detail"] for c in failed), checks
    assert KEY not in json.dumps(checks)


def test_a_closed_port_is_a_connection_error() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        checks = smoke_probe.run(f"http://127.0.0.1:{port}", "m", None, images=False, retries=0)
    assert [c["name"] for c in checks] == ["health", "models", "chat", "stream"]
    assert all(not c["ok"] and c["detail"].startswith("APIConnectionError") for c in checks), checks


def test_the_handler_answers_before_lambda_stops_it(scripted: Any) -> None:
    """Each request gets only what is left of the function's time; past the margin, checks fail fast
    with a report instead of Lambda's timeout, which would lose every result."""
    base = f"http://127.0.0.1:{scripted.server_address[1]}"
    report = smoke_probe.handler(event(base), context(smoke_probe.MARGIN_SECONDS + 0.5))
    assert len(report["checks"]) == 5
    for check in report["checks"]:
        assert not check["ok"]
        assert check["detail"] == "APITimeoutError: no time left in the probe's budget for this check"
    assert scripted.paths == []
    now = [0.0]
    api = smoke_probe.Endpoint(base, KEY, 120, retries=0, deadline=30.0, clock=lambda: now[0])
    assert api._budget() == 30.0
    now[0] = 25.0
    assert api._budget() == 5.0


def test_the_request_timeout_comes_from_the_functions_environment(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []
    real = smoke_probe.urllib.request.urlopen

    def urlopen(request: Any, timeout: float) -> Any:
        seen.append(timeout)
        return real(request, timeout=timeout)

    monkeypatch.setattr(smoke_probe.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv(smoke_probe.TIMEOUT_VARIABLE, "7")
    base = f"http://127.0.0.1:{scripted.server_address[1]}"
    smoke_probe.handler(event(base, key=None), context())
    assert seen and all(t == 7.0 for t in seen)


def test_the_handler_imports_only_the_standard_library_and_writes_no_logs() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported and imported <= set(sys.stdlib_module_names), imported
    assert "logging" not in imported
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "print" not in calls
