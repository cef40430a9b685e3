"""A stand-in for `vllm serve` in the supervisor tests: the fake OpenAI server on --host/--port.

It records its argv in $FAKE_ENGINE_ARGV, exits 0 on SIGTERM, and exits 3 once $FAKE_ENGINE_DIE_FILE
exists (an engine crash). Its /metrics is vLLM-shaped: $FAKE_ENGINE_GAUGES ("waiting,running,kv" per
engine, engines separated by ";") and $FAKE_ENGINE_KV_METRIC (the KV gauge's name) set what it says.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gateway_fake_upstream import FakeUpstream


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    known, _ = parser.parse_known_args()
    Path(os.environ["FAKE_ENGINE_ARGV"]).write_text("\n".join(sys.argv[1:]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    upstream = FakeUpstream(host=known.host)
    if os.environ.get("FAKE_ENGINE_GAUGES"):
        upstream.engine_gauges = [
            tuple(float(v) for v in engine.split(","))
            for engine in os.environ["FAKE_ENGINE_GAUGES"].split(";")
        ]  # type: ignore[misc]
    upstream.kv_metric = os.environ.get("FAKE_ENGINE_KV_METRIC", upstream.kv_metric)
    upstream.start(port=known.port)
    die_file = os.environ.get("FAKE_ENGINE_DIE_FILE")
    while not stop.wait(0.05):
        if die_file and Path(die_file).exists():
            return 3
    upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
