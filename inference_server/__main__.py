"""`python -m inference_server` / `inference-server`: the gateway on uvicorn (uvloop + httptools)."""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Sequence

import uvicorn

from inference_server.app import build_gateway
from inference_server.config import load, to_environ
from inference_server.server import protocol_class


def main(argv: Sequence[str] | None = None) -> int:
    settings = load(sys.argv[1:] if argv is None else argv)
    common = {
        "host": settings.host,
        "port": settings.port,
        # "auto" picks uvloop and httptools when installed (they are, in the images) and still runs
        # on a laptop without them.
        "loop": "auto",
        # httptools, with a limit on the request head (see server.py).
        "http": protocol_class(settings.max_header_bytes),
        "lifespan": "on",
        "access_log": False,  # our own JSON line replaces it
        "server_header": False,
        # Nothing here uses the client address, so X-Forwarded-For parsing would be pure cost.
        "proxy_headers": False,
        "log_level": "info",
        # SIGTERM: uvicorn stops accepting at once, lets in-flight requests finish up to this
        # deadline, then cancels what is left and runs the lifespan shutdown.
        "timeout_graceful_shutdown": math.ceil(settings.shutdown_grace),
        # Above the ALB's idle timeout (600 s; GATEWAY_KEEP_ALIVE_TIMEOUT, default 605): AWS documents
        # that the target's keep-alive must be longer, so the load balancer always closes first.
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout
        "timeout_keep_alive": math.ceil(settings.keep_alive_timeout),
    }
    if settings.workers > 1:
        # Workers are separate processes that rebuild the app (and the protocol's header limit) from
        # the environment: the protocol is named by its import path, not passed as a class.
        os.environ.update(to_environ(settings))
        common["http"] = "inference_server.server:HeaderLimitedProtocol"
        uvicorn.run("inference_server.app:create_app", factory=True, workers=settings.workers, **common)
    else:
        # uvicorn re-raises the signal that stopped it once it has drained; with this no-op handler in
        # place that re-raise returns here, so a drained SIGTERM exits 0 instead of "killed by signal".
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)
        uvicorn.Server(uvicorn.Config(build_gateway(settings), **common)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
