"""A small OpenAI-compatible server for the gateway's tests, run on 127.0.0.1 in its own thread.

Requests steer it with `fake_*` fields in the body (which also proves unknown fields pass through):
fake_chunks, fake_interval (s between chunks), fake_delay (s before the headers), fake_fail_after
(chunks, then the connection is cut), fake_status (answer an error in vLLM's legacy shape), and
fake_hold (a stream that sends one chunk and then waits until the client leaves).

GET /metrics answers in vLLM's Prometheus shape (vllm/v1/metrics/loggers.py): `engine_gauges` holds one
(waiting, running, kv 0-1) tuple per engine (data parallelism labels each `engine="<i>"`), published
under `kv_metric`'s name; `metrics_status` other than 200 makes it fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    raw: bytes | None = None


@dataclass
class FakeUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    aborted: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    completed_streams: int = 0
    cancelled_requests: int = 0
    engine_gauges: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.0, 0.0, 0.0)])
    kv_metric: str = "vllm:kv_cache_usage_perc"
    metrics_status: int = 200
    metrics_reads: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, port: int = 0) -> FakeUpstream:
        ready = threading.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        self.port = sock.getsockname()[1]

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/completions", self._completions)
            app.router.add_post("/v1/embeddings", self._embeddings)
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/v1/responses", self._responses)
            app.router.add_post("/tokenize", self._tokenize)
            app.router.add_post("/detokenize", self._detokenize)
            app.router.add_post("/v1/rerank", self._rerank)
            app.router.add_post("/v1/score", self._score)
            app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
            app.router.add_get("/metrics", self._metrics)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.SockSite(self._runner, sock)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-upstream")
        self._thread.start()
        assert ready.wait(10), "fake upstream did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def reset(self) -> None:
        self.seen.clear()
        self.aborted.clear()
        self.holding.clear()
        self.cancelled_requests = 0
        self.engine_gauges = [(0.0, 0.0, 0.0)]
        self.kv_metric = "vllm:kv_cache_usage_perc"
        self.metrics_status = 200
        self.metrics_reads = 0

    # -- handlers --------------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics_reads += 1
        if self.metrics_status != 200:
            return web.Response(status=self.metrics_status, text="engine unavailable\n")
        lines = []
        for name, kind, index, help_text in (
            ("vllm:num_requests_running", "gauge", 1, "Number of requests in model execution batches."),
            ("vllm:num_requests_waiting", "gauge", 0, "Number of requests waiting to be processed."),
            (self.kv_metric, "gauge", 2, "KV-cache usage. 1 means 100 percent usage."),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for engine, values in enumerate(self.engine_gauges):
                labels = f'engine="{engine}",model_name="fake-model"'
                lines.append(f"{name}{{{labels}}} {values[index]}")
        # A counter and a histogram, as vLLM serves them, which the gateway must step over.
        lines += [
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            'vllm:prompt_tokens_total{engine="0",model_name="fake-model"} 1234.0',
            "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
            "# TYPE vllm:time_to_first_token_seconds histogram",
            'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="fake-model"} 3.0',
            'vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="fake-model"} 4.0',
            'vllm:time_to_first_token_seconds_count{engine="0",model_name="fake-model"} 4.0',
            'vllm:time_to_first_token_seconds_sum{engine="0",model_name="fake-model"} 0.7',
        ]
        return web.Response(
            text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
            headers={"X-Prometheus-Format": "0.0.4"},
        )  # fmt: skip

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        # Python's json, not orjson: a seed above 64 bits must arrive as the integer it was.
        body = json.loads(raw) if raw else {}
        self.seen.append(Seen(request.path, {k.lower(): v for k, v in request.headers.items()}, body, raw))
        return body

    async def _wait_unless_aborted(self, request: web.Request, seconds: float) -> bool:
        """Sleep like a slow generation; False (and `aborted` set) if the caller hung up meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                self.cancelled_requests += 1
                self.aborted.set()
                return False
            await asyncio.sleep(0.01)
        return True

    @staticmethod
    def _error(status: int, model: str | None = None) -> web.Response:
        # vLLM < 0.10's error shape, with its numeric code, which the gateway must normalise.
        payload = {
            "object": "error",
            "message": f"fake error {status}" + (f" for model {model}" if model else ""),
            "type": "BadRequestError",
            "param": None,
            "code": status,
        }
        return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if body.get("fake_delay") and not await self._wait_unless_aborted(request, float(body["fake_delay"])):
            return web.Response(status=499)
        if body.get("fake_status"):
            return self._error(
                int(body["fake_status"]), body.get("model") if body.get("fake_echo_model") else None
            )
        model = body.get("model", "fake-model")
        words = [f"tok{i} " for i in range(int(body.get("fake_chunks", 4)))]
        if not body.get("stream"):
            reply = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": len(words),
                    "total_tokens": 7 + len(words),
                },
            }
            return web.Response(body=orjson.dumps(reply), content_type="application/json")
        return await self._stream(request, body, model, words)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], model: str, words: list[str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        interval = float(body.get("fake_interval", 0))
        fail_after = body.get("fake_fail_after")
        try:
            for index, word in enumerate(words):
                if fail_after is not None and index >= int(fail_after):
                    # Cut the connection mid-stream, as an engine crash would.
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                chunk = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if body.get("fake_hold"):
                    self.holding.set()
                    # Wait until the gateway drops the connection (the client left).
                    while request.transport is not None and not request.transport.is_closing():
                        await asyncio.sleep(0.01)
                    self.aborted.set()
                    return response
                if interval:
                    await asyncio.sleep(interval)
            usage = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": len(words),
                    "total_tokens": 7 + len(words),
                },
            }
            await response.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
            await response.write_eof()
            self.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.aborted.set()
            raise
        return response

    async def _completions(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        reply = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "text": " world", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        reply = {
            "object": "list",
            "model": body.get("model"),
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.25, -0.5, float(i)]}
                for i in range(len(items))
            ],
            "usage": {"prompt_tokens": len(items), "total_tokens": len(items)},
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    async def _models(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, {k.lower(): v for k, v in request.headers.items()}, None))
        reply = {
            "object": "list",
            "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")

    # -- the rest of vLLM's OpenAI server's routes -------------------------------------------------

    @staticmethod
    def _response_object(model: str, text: str) -> dict[str, Any]:
        return {
            "id": "resp_fake",
            "object": "response",
            "created_at": 0,
            "model": model,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_fake",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 5,
                "output_tokens": 2,
                "total_tokens": 7,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = body.get("model", "fake-model")
        if not body.get("stream"):
            return web.json_response(
                self._response_object(model, "hello there"), dumps=lambda o: orjson.dumps(o).decode()
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events: list[dict[str, Any]] = [
            {
                "type": "response.created",
                "response": {**self._response_object(model, ""), "status": "in_progress", "output": []},
            },
        ]
        events += [
            {
                "type": "response.output_text.delta",
                "item_id": "msg_fake",
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
            for piece in ("hello", " there")
        ]
        events.append({"type": "response.completed", "response": self._response_object(model, "hello there")})
        for number, event in enumerate(events):
            event["sequence_number"] = number
            await response.write(b"event: %b\ndata: %b\n\n" % (event["type"].encode(), orjson.dumps(event)))
        await response.write_eof()
        return response

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        tokens = list(range(len(str(body.get("prompt", "")).split())))
        return web.json_response({"tokens": tokens, "count": len(tokens), "max_model_len": 4096})

    async def _detokenize(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response({"prompt": " ".join(f"t{t}" for t in body.get("tokens", []))})

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        documents = body.get("documents", [])
        results = [
            {"index": i, "document": {"text": d}, "relevance_score": 1.0 / (i + 1)}
            for i, d in enumerate(documents)
        ]
        return web.json_response(
            {
                "id": "rerank-fake",
                "model": body.get("model"),
                "usage": {"total_tokens": 9},
                "results": results,
            }
        )

    async def _score(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response(
            {
                "id": "score-fake",
                "object": "list",
                "model": body.get("model"),
                "data": [{"index": 0, "object": "score", "score": 0.5}],
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )

    async def _transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        size = len(upload.file.read()) if hasattr(upload, "file") else 0
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        self.seen.append(Seen(request.path, {k.lower(): v for k, v in request.headers.items()}, fields))
        return web.json_response({"text": f"heard {size} bytes", "usage": {"type": "duration", "seconds": 1}})


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, held until the end."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
