"""Gateway overhead: the same load straight to a fast fake upstream and through the gateway.

Rounds alternate (direct, gateway, direct, ...) so drift on the machine hits both sides alike. The
fake upstream is a raw uvloop protocol and the load client is aiohttp, each in its own process, so
neither dominates the gateway being measured. The gateway runs as `python -m inference_server` in a
subprocess and its CPU time is read from /proc/<pid>/stat around the gateway rounds.

Run: `python -m bench gateway` (or `python -m bench.gateway`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789"
CHUNKS = 16
SLOW_INTERVAL = 0.020

# --------------------------------------------------------------------------------------------------
# The fast fake upstream: raw asyncio protocol, HTTP/1.1 keep-alive, chunked SSE.

_COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hello world"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
)
_MODELS = b'{"object":"list","data":[{"id":"bench","object":"model","created":0,"owned_by":"bench"}]}'


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_EVENTS = [
    _chunk(
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
        b'"choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}\n\n' % i
    )
    for i in range(CHUNKS - 1)
]
_EVENTS.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
_SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _json_head(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)


_COMPLETION_RESPONSE = _json_head(_COMPLETION) + _COMPLETION
_MODELS_RESPONSE = _json_head(_MODELS) + _MODELS


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"get"):
            self.transport.write(_MODELS_RESPONSE)
        elif b'"stream":true' in body:
            self.transport.write(_SSE_HEAD)
            interval = SLOW_INTERVAL if b'"slow":true' in body else 0.0
            self._event(0, interval)
        else:
            self.transport.write(_COMPLETION_RESPONSE)

    def _event(self, index: int, interval: float) -> None:
        # One write per loop turn (or per token interval), as an engine emits tokens one by one.
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_EVENTS[index])
        if index + 1 < len(_EVENTS):
            if interval:
                self.loop.call_later(interval, self._event, index + 1, interval)
            else:
                self.loop.call_soon(self._event, index + 1, interval)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def serve_upstream() -> None:
    import uvloop

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(
            _UpstreamProtocol, "127.0.0.1", 0, backlog=1024
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    uvloop.run(run())


# --------------------------------------------------------------------------------------------------
# The load client.


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0


def _body(stream: bool, slow: bool) -> bytes:
    text = (
        b'{"model":"bench","messages":[{"role":"user","content":"Say hello to the benchmark."}],'
        b'"max_tokens":16,"temperature":0'
    )
    if stream:
        text += b',"stream":true'
    if slow:
        text += b',"slow":true'
    return text + b"}"


async def _load(
    session: object,
    url: str,
    body: bytes,
    *,
    stream: bool,
    requests: int,
    concurrency: int,
    stagger: float = 0.0,
) -> Sample:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    sample = Sample()
    remaining = requests
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def worker(index: int) -> None:
        nonlocal remaining
        perf = time.perf_counter
        if stagger:
            # Spread the workers' starts over one request's duration: a closed loop that starts all
            # workers at once keeps them in lockstep, a burst pattern no real traffic has.
            await asyncio.sleep(stagger * index / concurrency)
        while remaining > 0:
            remaining -= 1
            started = perf()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status != 200:
                        sample.errors += 1
                        await response.read()
                        continue
                    if stream:
                        content = response.content
                        first = await content.readany()
                        if first:
                            sample.ttfts.append(perf() - started)
                        while await content.readany():
                            pass
                    else:
                        await response.read()
            except aiohttp.ClientError:
                sample.errors += 1
                continue
            sample.latencies.append(perf() - started)

    begun = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    sample.wall = time.perf_counter() - begun
    return sample


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    name: str
    concurrency: int
    stream: bool
    added_p50_ms: float
    added_p99_ms: float
    added_ttft_p50_ms: float | None
    throughput_ratio: float
    cpu_ms_per_request: float
    errors: int


async def _scenario(
    name: str,
    direct_url: str,
    gateway_url: str,
    gateway_pid: int,
    *,
    stream: bool,
    slow: bool,
    concurrency: int,
    requests: int,
    rounds: int,
) -> Result:
    import aiohttp

    body = _body(stream, slow)
    direct, through = Sample(), Sample()
    cpu = 0.0
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        # Warm both paths (connections, code paths) before anything is counted.
        for url in (direct_url, gateway_url):
            await _load(session, url, body, stream=stream, requests=concurrency * 4, concurrency=concurrency)
        for _ in range(rounds):
            for url, into in ((direct_url, direct), (gateway_url, through)):
                before = _cpu_seconds(gateway_pid) if into is through else 0.0
                stagger = CHUNKS * SLOW_INTERVAL if slow else 0.0
                sample = await _load(
                    session,
                    url,
                    body,
                    stream=stream,
                    requests=requests,
                    concurrency=concurrency,
                    stagger=stagger,
                )
                if into is through:
                    cpu += _cpu_seconds(gateway_pid) - before
                into.latencies += sample.latencies
                into.ttfts += sample.ttfts
                into.wall += sample.wall
                into.errors += sample.errors
    direct_rps = len(direct.latencies) / direct.wall
    through_rps = len(through.latencies) / through.wall
    return Result(
        name=name,
        concurrency=concurrency,
        stream=stream,
        added_p50_ms=(_pct(through.latencies, 0.5) - _pct(direct.latencies, 0.5)) * 1000,
        added_p99_ms=(_pct(through.latencies, 0.99) - _pct(direct.latencies, 0.99)) * 1000,
        added_ttft_p50_ms=(_pct(through.ttfts, 0.5) - _pct(direct.ttfts, 0.5)) * 1000 if stream else None,
        throughput_ratio=through_rps / direct_rps,
        cpu_ms_per_request=cpu * 1000 / max(1, len(through.latencies)),
        errors=direct.errors + through.errors,
    )


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_upstream() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway", "--serve-upstream"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _start_gateway(upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    import urllib.request

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_METRICS_STACK": "bench"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inference_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--upstream",
            "vllm",
            "--upstream-url",
            f"http://127.0.0.1:{upstream_port}/v1",
            "--api-keys",
            KEY,
            # As production runs it: the access log line per request and the usage metrics (EMF,
            # flushed every second here so the lines are really written during the run) are on.
            "--log-requests",
            "--usage-metrics",
            "--usage-flush-interval",
            "1",
            "--metrics-port",
            str(_free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.05)


SCENARIOS = [
    # name, stream, slow, concurrency, requests per round, rounds
    ("json c=1", False, False, 1, 1500, 3),
    ("json c=16", False, False, 16, 3000, 3),
    ("json c=64", False, False, 64, 3000, 3),
    ("sse16 c=1", True, False, 1, 600, 3),
    ("sse16 c=16", True, False, 16, 1500, 3),
    ("sse16 c=64", True, False, 64, 1500, 3),
    ("sse16 20ms/token c=16", True, True, 16, 160, 2),
]


def run(scale: float = 1.0, only: str | None = None) -> list[Result]:
    import uvloop

    upstream, upstream_port = _start_upstream()
    gateway, gateway_port = _start_gateway(upstream_port)
    try:
        direct_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        results = []
        for name, stream, slow, concurrency, requests, rounds in SCENARIOS:
            if only and only not in name:
                continue
            results.append(
                uvloop.run(
                    _scenario(
                        name,
                        direct_url,
                        gateway_url,
                        gateway.pid,
                        stream=stream,
                        slow=slow,
                        concurrency=concurrency,
                        requests=max(concurrency, int(requests * scale)),
                        rounds=rounds,
                    )
                )
            )
        return results
    finally:
        for process in (gateway, upstream):
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


# --------------------------------------------------------------------------------------------------
# Component choices: the HTTP client and the JSON library, each measured alone.


async def _client_cost(kind: str, port: int, requests: int, stream: bool) -> float:
    """CPU seconds per request spent by one client library talking to the fast upstream."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = _body(stream, slow=False)
    headers = {"Content-Type": "application/json"}
    if kind == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(auto_decompress=False) as session:

            async def one() -> None:
                async with session.post(url, data=body, headers=headers) as response:
                    if stream:
                        while await response.content.readany():
                            pass
                    else:
                        await response.read()

            for _ in range(50):
                await one()
            begun = time.process_time()
            for _ in range(requests):
                await one()
            return (time.process_time() - begun) / requests
    if kind == "inference_server.httpclient":
        from inference_server.httpclient import Pool

        pool = Pool(f"http://127.0.0.1:{port}/v1", connect_timeout=5)
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )

        async def one_lean() -> None:
            connection = await pool.acquire()
            connection.send(request)
            await connection.wait_headers()
            while await connection.next_chunk():
                pass
            pool.release(connection)

        for _ in range(50):
            await one_lean()
        begun = time.process_time()
        for _ in range(requests):
            await one_lean()
        cost = (time.process_time() - begun) / requests
        pool.close()
        return cost
    import httpx

    async with httpx.AsyncClient() as client:

        async def one_httpx() -> None:
            if stream:
                async with client.stream("POST", url, content=body, headers=headers) as response:
                    async for _ in response.aiter_raw():
                        pass
            else:
                await client.post(url, content=body, headers=headers)

        for _ in range(50):
            await one_httpx()
        begun = time.process_time()
        for _ in range(requests):
            await one_httpx()
        return (time.process_time() - begun) / requests


def _client_cost_subprocess(kind: str, port: int, stream: bool, requests: int) -> float:
    code = (
        "import sys, uvloop; from bench.gateway import _client_cost; "
        f"print(uvloop.run(_client_cost({kind!r}, {port}, {requests}, {stream})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _json_costs() -> list[tuple[str, float, float]]:
    import json
    import timeit

    import orjson

    request = _body(stream=False, slow=False)
    parsed = json.loads(request)
    rows = []
    for name, loads, dumps in (("json", json.loads, json.dumps), ("orjson", orjson.loads, orjson.dumps)):
        n = 20000
        rows.append(
            (
                name,
                timeit.timeit(functools.partial(loads, request), number=n) / n,
                timeit.timeit(functools.partial(dumps, parsed), number=n) / n,
            )
        )
    return rows


def components() -> None:
    from rich.console import Console
    from rich.table import Table

    upstream, port = _start_upstream()
    try:
        table = Table(title="HTTP client to the upstream: CPU per request (sequential, uvloop)")
        for column in ("client", "non-streamed µs", "16-chunk stream µs"):
            table.add_column(column, justify="right")
        for kind in ("inference_server.httpclient", "aiohttp", "httpx"):
            table.add_row(
                kind,
                f"{_client_cost_subprocess(kind, port, False, 1500) * 1e6:.0f}",
                f"{_client_cost_subprocess(kind, port, True, 600) * 1e6:.0f}",
            )
    finally:
        upstream.terminate()
        upstream.wait(10)
    console = Console(width=140)
    console.print(table)
    json_table = Table(title="JSON library on a chat request body")
    for column in ("library", "loads µs", "dumps µs"):
        json_table.add_column(column, justify="right")
    for name, loads, dumps in _json_costs():
        json_table.add_row(name, f"{loads * 1e6:.2f}", f"{dumps * 1e6:.2f}")
    console.print(json_table)


def _verdicts(results: list[Result]) -> list[tuple[str, str, float, str, bool]]:
    by = {r.name: r for r in results}
    json1, json16, sse16, slow = (
        by["json c=1"],
        by["json c=16"],
        by["sse16 c=16"],
        by["sse16 20ms/token c=16"],
    )
    return [
        ("added p50, c=1 (non-streamed)", "ms", json1.added_p50_ms, "≤ 0.5", json1.added_p50_ms <= 0.5),
        (
            "gateway CPU per non-streamed request",
            "ms",
            json16.cpu_ms_per_request,
            "≤ 0.3",
            json16.cpu_ms_per_request <= 0.3,
        ),
        (
            "gateway CPU per 16-chunk stream",
            "ms",
            sse16.cpu_ms_per_request,
            "≤ 0.6",
            sse16.cpu_ms_per_request <= 0.6,
        ),
        (
            "added TTFT p50, 20 ms tokens, c=16",
            "ms",
            slow.added_ttft_p50_ms or 0.0,
            "≤ 1",
            (slow.added_ttft_p50_ms or 0.0) <= 1.0,
        ),
        (
            "throughput vs direct, 20 ms tokens, c=16",
            "%",
            slow.throughput_ratio * 100,
            "≥ 98",
            slow.throughput_ratio >= 0.98,
        ),
    ]


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    scale = float(argv[0]) if argv else float(os.environ.get("BENCH_SCALE", "1"))
    only = os.environ.get("BENCH_ONLY")
    results = run(scale, only)
    console = Console(width=140)
    table = Table(title="gateway vs direct (fake upstream on 127.0.0.1, alternating rounds)")
    for column in (
        "scenario",
        "added p50 ms",
        "added p99 ms",
        "added TTFT p50 ms",
        "throughput",
        "CPU ms/req",
        "errors",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.name,
            f"{r.added_p50_ms:.3f}",
            f"{r.added_p99_ms:.3f}",
            "-" if r.added_ttft_p50_ms is None else f"{r.added_ttft_p50_ms:.3f}",
            f"{r.throughput_ratio * 100:.1f} %",
            f"{r.cpu_ms_per_request:.3f}",
            str(r.errors),
        )
    console.print(table)
    targets = Table(title="targets")
    for column in ("metric", "measured", "target", "result"):
        targets.add_column(column)
    ok = True
    for metric, unit, value, target, passed in _verdicts(results) if not only else []:
        ok &= passed
        targets.add_row(metric, f"{value:.3f} {unit}", f"{target} {unit}", "pass" if passed else "FAIL")
    console.print(targets)
    if not only:
        components()
    errors = sum(r.errors for r in results)
    if errors:
        console.print(f"{errors} requests failed")
    return 0 if ok and not errors else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-upstream"]:
        serve_upstream()
    else:
        sys.exit(main(sys.argv[1:]))
