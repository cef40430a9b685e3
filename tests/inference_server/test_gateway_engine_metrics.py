"""The load gauges: vLLM's /metrics read on loopback and published as EMF lines CloudWatch extracts."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from gateway_emf import Extracted, check, extract
from gateway_fake_upstream import FakeUpstream, closed_port
from gateway_support import RunningGateway, settings_for

from inference_server import metric_names
from inference_server.app import build_gateway
from inference_server.engine_metrics import GaugePublisher, kv_cache_names, metrics_url, parse
from inference_server.usage import UsageMetrics
from templates import gateway_metrics

STACK = (("Stack", "stack-x"),)


def _public(module: object) -> dict[str, object]:
    return {
        k: v for k, v in vars(module).items() if k.isupper() and isinstance(v, str | tuple) and k != "UNITS"
    }


def test_the_gateways_names_are_the_ones_the_stacks_reference() -> None:
    theirs, ours = _public(gateway_metrics), _public(metric_names)
    assert theirs == {k: ours[k] for k in theirs}
    assert set(ours) == set(theirs)
    assert set(metric_names.UNITS) == {
        *metric_names.USAGE_METRICS,
        *metric_names.GAUGES,
        metric_names.TIME_TO_FIRST_TOKEN,
    }


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.8.5", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")),
        ("0.8.5.post1", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")),
        ("0.9.0", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        ("0.11.0", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        ("1.2", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        (None, ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        ("nightly", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
    ],
)
def test_the_kv_cache_gauges_name_follows_the_vllm_release(
    version: str | None, expected: tuple[str, str]
) -> None:
    assert kv_cache_names(version) == expected


def _text(kv_name: str, *engines: tuple[float, float, float]) -> str:
    lines = []
    for name, index in (("vllm:num_requests_waiting", 0), ("vllm:num_requests_running", 1), (kv_name, 2)):
        lines += [f"# HELP {name} x", f"# TYPE {name} gauge"]
        lines += [f'{name}{{engine="{i}",model_name="m"}} {e[index]}' for i, e in enumerate(engines)]
    return "\n".join(lines) + "\n"


def test_counts_are_summed_over_engines_and_the_kv_cache_averaged_in_percent() -> None:
    sample = parse(_text("vllm:kv_cache_usage_perc", (3, 2, 0.5), (1, 2, 0.25)), kv_cache_names("0.11.0"))
    assert (sample.waiting, sample.running, sample.kv_cache_percent) == (4.0, 4.0, 37.5)


def test_the_other_kv_name_is_read_when_the_expected_one_is_absent() -> None:
    old = _text("vllm:gpu_cache_usage_perc", (0, 1, 0.8))
    assert parse(old, kv_cache_names("0.11.0")).kv_cache_percent == 80.0
    new = _text("vllm:kv_cache_usage_perc", (0, 1, 0.1))
    assert parse(new, kv_cache_names("0.8.5")).kv_cache_percent == 10.0
    # Both present (0.9 and 0.10 publish both): the release's own name wins.
    both = _text("vllm:kv_cache_usage_perc", (0, 1, 0.1)) + _text("vllm:gpu_cache_usage_perc", (0, 1, 0.9))
    assert parse(both, kv_cache_names("0.8.5")).kv_cache_percent == 90.0
    assert parse(both, kv_cache_names("0.11.0")).kv_cache_percent == 10.0


def test_a_gauge_the_engine_does_not_publish_is_none_not_zero() -> None:
    sample = parse("# TYPE other gauge\nother 1\n", kv_cache_names(None))
    assert (sample.waiting, sample.running, sample.kv_cache_percent) == (None, None, None)
    with pytest.raises(ValueError, match="not Prometheus text"):
        parse("vllm:num_requests_waiting{engine=0 3\n", kv_cache_names(None))


def test_vllms_metrics_are_beside_its_openai_api() -> None:
    assert metrics_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://engine:9000") == "http://engine:9000/metrics"


def _publisher(
    upstream_url: str | None, inflight: Callable[[], int] = lambda: 2, **kwargs: object
) -> GaugePublisher:
    return GaugePublisher("stack-x", inflight, engine_url=upstream_url, fd=-1, **kwargs)  # type: ignore[arg-type]


def _by_name(line: bytes) -> dict[str, Extracted]:
    return {m.name: m for m in extract(line)}


def test_a_gauge_line_is_emf_with_the_stack_dimension_alone() -> None:
    publisher = _publisher(None)
    line = publisher.line(asyncio.run(publisher.sample()), stamp_ms=1_767_225_600_000)
    assert check(line)["_aws"]["Timestamp"] == 1_767_225_600_000
    assert _by_name(line) == {
        "RequestsInFlight": Extracted("deployctl/Gateway", "RequestsInFlight", STACK, (2.0,), "Count")
    }


def test_the_engines_gauges_come_from_its_metrics_endpoint(fresh_upstream: FakeUpstream) -> None:
    fresh_upstream.engine_gauges = [(3.0, 2.0, 0.5), (1.0, 2.0, 0.25)]
    publisher = _publisher(metrics_url(fresh_upstream.url), engine_version="0.11.0")
    found = _by_name(publisher.line(asyncio.run(publisher.sample())))
    assert {name: (m.values, m.unit, m.dimensions) for name, m in found.items()} == {
        "RequestsInFlight": ((2.0,), "Count", STACK),
        "EngineRequestsWaiting": ((4.0,), "Count", STACK),
        "EngineRequestsRunning": ((4.0,), "Count", STACK),
        "EngineKvCacheUsage": ((37.5,), "Percent", STACK),
    }


def test_an_older_vllm_reports_its_kv_cache_under_the_old_name(fresh_upstream: FakeUpstream) -> None:
    fresh_upstream.kv_metric = "vllm:gpu_cache_usage_perc"
    fresh_upstream.engine_gauges = [(0.0, 1.0, 0.42)]
    publisher = _publisher(metrics_url(fresh_upstream.url), engine_version="0.8.5")
    assert _by_name(publisher.line(asyncio.run(publisher.sample())))["EngineKvCacheUsage"].values == (42.0,)


@pytest.mark.parametrize("broken", ["status", "closed"])
def test_an_engine_that_does_not_answer_leaves_its_gauges_out(
    fresh_upstream: FakeUpstream, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_upstream.metrics_status = 503
    url = (
        metrics_url(fresh_upstream.url) if broken == "status" else f"http://127.0.0.1:{closed_port()}/metrics"
    )
    publisher = _publisher(url)
    for _ in range(2):
        assert set(_by_name(publisher.line(asyncio.run(publisher.sample())))) == {"RequestsInFlight"}
    # Said once, not on every line.
    assert len([r for r in caplog.records if "cannot read the engine" in r.getMessage()]) == 1


@pytest.fixture
def gauge_file(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "stdout"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd, path
    os.close(fd)


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line]


def _eventually(check_: Callable[[], object], seconds: float = 15) -> object:
    pause = threading.Event()
    for _ in range(int(seconds / 0.05)):
        found = check_()
        if found:
            return found
        pause.wait(0.05)
    raise AssertionError("not within the time allowed")


@pytest.mark.slow
def test_the_gateway_publishes_its_in_flight_streams_and_the_engines_queue(
    fresh_upstream: FakeUpstream, gauge_file: tuple[int, Path]
) -> None:
    fd, path = gauge_file
    settings = settings_for(fresh_upstream.url, metrics_stack="stack-x", engine_version="0.11.0")
    gateway = build_gateway(settings)
    # The publisher the gateway builds, with a short interval and a file for its stdout.
    gateway.gauges = GaugePublisher(
        "stack-x",
        lambda: gateway.requests_in_flight,
        engine_url=metrics_url(settings.upstream_url),
        engine_version=settings.engine_version,
        interval=0.1,
        fd=fd,
    )
    fresh_upstream.engine_gauges = [(5.0, 1.0, 0.9)]
    running = RunningGateway(gateway).start()
    try:
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        stream = running.client().chat.completions.create(**ask, stream=True, extra_body={"fake_hold": True})  # type: ignore[call-overload]
        try:
            assert fresh_upstream.holding.wait(10)

            def busy() -> dict[str, Extracted] | None:
                for line in reversed(_lines(path)):
                    found = _by_name(line)
                    if found["RequestsInFlight"].values == (1.0,):
                        return found
                return None

            found = _eventually(busy)
            assert isinstance(found, dict)
            assert found["EngineRequestsWaiting"] == Extracted(
                "deployctl/Gateway", "EngineRequestsWaiting", STACK, (5.0,), "Count"
            )
            assert found["EngineKvCacheUsage"].values == (90.0,)
        finally:
            stream.close()
        # Idle again: the task says so with zeros (silence would leave the average to busy tasks).
        _eventually(lambda: _by_name(_lines(path)[-1])["RequestsInFlight"].values == (0.0,))
    finally:
        running.stop()
    assert fresh_upstream.metrics_reads >= 2
    for line in _lines(path):
        check(line)


def test_a_streamed_requests_time_to_first_token_is_published_per_client() -> None:
    usage = UsageMetrics("stack-x", fd=-1)
    usage.record("team-a", 200, 1.5, 10, 20, False, ttft=0.25)
    usage.record("team-a", 200, 0.5, 10, 20, False)
    usage.record("team-b", 200, 0.5, 10, 20, False)
    lines = {orjson.loads(line)["Client"]: line for line in usage.lines()}
    ttft = [m for m in extract(lines["team-a"]) if m.name == "TimeToFirstToken"]
    assert {(m.dimensions, m.values, m.unit) for m in ttft} == {
        (STACK, (250.0,), "Milliseconds"),
        ((("Client", "team-a"), ("Stack", "stack-x")), (250.0,), "Milliseconds"),
    }
    # A client with no streamed request declares no TimeToFirstToken (EMF needs its value at the root).
    assert "TimeToFirstToken" not in {m.name for m in extract(lines["team-b"])}


def test_time_to_first_token_is_sampled_to_emfs_hundred_values() -> None:
    usage = UsageMetrics("stack-x", fd=-1)
    for index in range(500):
        usage.record("team-a", 200, 1.0, 1, 1, False, ttft=index / 1000)
    (line,) = usage.lines()
    values = next(m.values for m in extract(line) if m.name == "TimeToFirstToken")
    assert len(values) == 100 and len(set(values)) == 100
    assert max(values) > 100  # the sample reaches past the first hundred requests


def _rendered(stack: str, tmp_path: Path) -> dict[str, object]:
    from tests.templates.matrix import files
    from tooling import repository
    from tooling.render import render_deployment

    environment, name = stack.split("-", 1)
    relative = f"deployments/{environment}/{name}.yaml"
    (tmp_path / relative).parent.mkdir(parents=True)
    (tmp_path / relative).write_text(files()[relative], encoding="utf-8")
    (deployment,) = repository.load(tmp_path).valid
    return orjson.loads(render_deployment(deployment).text)


def test_the_gateway_as_the_stack_configures_it_publishes_the_metric_its_policy_tracks(
    fresh_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The two halves of queue_depth_per_task meet: the rendered policy names exactly what CloudWatch
    extracts from the gateway's line, when the gateway runs with the task's own environment."""
    stack = "dev-gpu-llm-signals"
    resources = _rendered(stack, tmp_path)["Resources"]
    assert isinstance(resources, dict)
    policy = resources["ServiceQueueDepthPerTaskPolicy"]["Properties"]
    tracked = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    # What ECS gives the container: Ref AWS::StackName is the stack's name. The gateway's own AWS
    # settings (key secrets) stay out: the fake engine stands in for vLLM.
    task_env = {
        e["Name"]: stack if e["Value"] == {"Ref": "AWS::StackName"} else e["Value"]
        for e in container["Environment"]
        if e["Name"] in {"GATEWAY_METRICS_STACK", "ENGINE_VERSION", "GATEWAY_UPSTREAM"}
        or e["Name"].startswith("GATEWAY_GAUGE")
    }
    assert set(task_env) >= {"GATEWAY_METRICS_STACK", "ENGINE_VERSION", "GATEWAY_UPSTREAM"}
    from inference_server.config import load

    settings = load([], {**task_env, "GATEWAY_UPSTREAM_URL": fresh_upstream.url, "GATEWAY_API_KEYS": "sk-x"})
    fresh_upstream.engine_gauges = [(7.0, 3.0, 0.5)]
    gauges = build_gateway(settings).gauges
    assert gauges.enabled
    extracted = extract(gauges.line(asyncio.run(gauges.sample())))
    dimensions = tuple(
        sorted(
            (d["Name"], stack if d["Value"] == {"Ref": "AWS::StackName"} else d["Value"])
            for d in tracked["Dimensions"]
        )
    )
    (match,) = [
        m
        for m in extracted
        if (m.namespace, m.name, m.dimensions) == (tracked["Namespace"], tracked["MetricName"], dimensions)
    ]
    assert match.values == (7.0,)
    assert tracked["Statistic"] == "Average"


@pytest.mark.slow
def test_the_images_entrypoint_publishes_the_fake_engines_gauges_on_stdout(tmp_path: Path) -> None:
    """The whole container as the stacks run it: the supervisor, a vLLM-shaped engine on loopback (the
    fake), the gateway deriving the engine's /metrics from ENGINE_PORT and its KV name from ENGINE_VERSION."""
    import signal
    import subprocess
    import sys

    from gateway_support import wait_for_url

    root = Path(__file__).resolve().parents[2]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AWS_", "ENGINE_"))}
    env.update(
        {
            "PYTHONPATH": str(root),
            "ENGINE_PORT": str(closed_port()),
            "ENGINE_VERSION": "0.8.5",
            "ENGINE_COMMAND": f"{sys.executable} {Path(__file__).with_name('gateway_fake_engine.py')}"
            " --host {host} --port {port}",
            "FAKE_ENGINE_ARGV": str(tmp_path / "argv"),
            "FAKE_ENGINE_GAUGES": "2,1,0.25;1,1,0.75",
            "FAKE_ENGINE_KV_METRIC": "vllm:gpu_cache_usage_perc",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": "0",
            "GATEWAY_METRICS_PORT": "0",
            "GATEWAY_API_KEYS": "sk-box",
            "GATEWAY_METRICS_STACK": "dev-box",
            "GATEWAY_GAUGE_INTERVAL": "0.2",
            "GATEWAY_LOG_REQUESTS": "0",
            "GATEWAY_USAGE_METRICS": "0",
            "SUPERVISOR_GRACE": "10",
        }
    )
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "inference_server.supervisor"], env=env, cwd=root, stdout=out, stderr=err
        )
    try:
        wait_for_url(process, stderr, attempts=2000)

        def engine_line() -> dict[str, Extracted] | None:
            for line in _lines(stdout):
                if line.startswith(b"{") and b'"_aws"' in line:
                    found = _by_name(line)
                    if "EngineKvCacheUsage" in found:
                        return found
            return None

        found = _eventually(engine_line)
        assert isinstance(found, dict)
        dev_box = (("Stack", "dev-box"),)
        assert {n: (m.values, m.dimensions) for n, m in found.items()} == {
            "RequestsInFlight": ((0.0,), dev_box),
            "EngineRequestsWaiting": ((3.0,), dev_box),
            "EngineRequestsRunning": ((2.0,), dev_box),
            "EngineKvCacheUsage": ((50.0,), dev_box),
        }
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
