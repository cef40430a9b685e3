"""Gateway settings: every command-line flag has an environment variable of the same meaning.

The flags win over the environment so that a local run can override what an image sets. The parsed
settings are written back to the environment by `__main__` because uvicorn's worker processes
rebuild the app from the environment, not from our argv.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

UPSTREAM_KINDS = ("vllm", "external", "sagemaker")


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"  # noqa: S104 - the container's published port; the engine itself stays on 127.0.0.1
    port: int = 8080
    upstream: str = "vllm"
    upstream_url: str = "http://127.0.0.1:8000/v1"
    api_keys: tuple[str, ...] = ()
    api_keys_file: str | None = None
    api_key_secret: str | None = None
    provider_key_secret: str | None = None
    served_model: str | None = None
    upstream_model: str | None = None
    allow_anonymous: bool = False
    sagemaker_endpoint: str | None = None
    sagemaker_contract: bool = False
    workers: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    # Off unless a deployment sets them: one task's cap on all its clients together would silently
    # cap production (a one-GPU vLLM serves far more). Per-client limits come from the clients list.
    rpm_per_key: int = 0
    concurrency_per_key: int = 0
    connect_timeout: float = 5.0
    # Non-streamed vLLM replies send their headers only when generation ends, so the first byte
    # can legitimately take as long as the longest generation.
    first_byte_timeout: float = 600.0
    connect_retries: int = 2
    keepalive_interval: float = 15.0
    # Above the ALB's 600 s idle timeout: AWS documents that the target's keep-alive must be longer,
    # or the load balancer reuses a connection the target is closing and answers 502.
    keep_alive_timeout: float = 605.0
    # The upstream's read timeout when set (HTTP: to the first byte; SageMaker: botocore's).
    upstream_timeout: float | None = None
    # Idle pooled connections are dropped after this; below the upstream's own keep-alive (uvicorn,
    # which vLLM runs on, closes at 5 s). A connection that dies anyway is retried once.
    upstream_idle_timeout: float = 4.0
    # Request line + headers; the ALB refuses a request header over 64 K itself, so this caps nothing
    # it admits: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html
    max_header_bytes: int = 64 * 1024
    metrics_port: int = 9100
    ready_cache_seconds: float = 5.0
    clients_parameter: str | None = None
    clients_refresh_interval: float = 30.0
    provider_key_refresh_interval: float = 300.0
    metrics_stack: str | None = None
    usage_metrics: bool = True
    usage_flush_interval: float = 60.0
    # The load gauges scaling tracks (engine_metrics.py): well inside target tracking's one-minute
    # period, so every period has data points from every task.
    gauge_metrics: bool = True
    gauge_interval: float = 10.0
    # Default: vLLM's /metrics beside the upstream's /v1, for the vllm upstream only.
    engine_metrics_url: str | None = None
    # The vLLM release behind the gateway: which name its KV cache gauge has.
    engine_version: str | None = None
    shutdown_grace: float = 30.0
    key_refresh_interval: float = 60.0
    key_refresh_min_interval: float = 5.0
    image_domains: tuple[str, ...] = ()
    max_images: int = 8
    max_image_bytes: int = 5 * 1024 * 1024
    log_requests: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)


def _csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


# flag name -> (environment variable, type, help)
_OPTIONS: dict[str, tuple[str, type, str]] = {
    "host": ("GATEWAY_HOST", str, "address to listen on"),
    "port": ("GATEWAY_PORT", int, "port to listen on (default 8080)"),
    "upstream": ("GATEWAY_UPSTREAM", str, "vllm, external or sagemaker"),
    "upstream_url": ("GATEWAY_UPSTREAM_URL", str, "the upstream's OpenAI base URL, including /v1"),
    "api_keys": ("GATEWAY_API_KEYS", str, "comma-separated accepted keys (local runs)"),
    "api_keys_file": ("GATEWAY_API_KEYS_FILE", str, "file with one accepted key per line (local runs)"),
    "api_key_secret": ("GATEWAY_API_KEY_SECRET", str, "Secrets Manager secret id holding the client key"),
    "provider_key_secret": ("GATEWAY_PROVIDER_KEY_SECRET", str, "Secrets Manager secret id (external)"),
    "sagemaker_endpoint": ("GATEWAY_SAGEMAKER_ENDPOINT", str, "SageMaker endpoint name (sagemaker)"),
    "served_model": ("GATEWAY_SERVED_MODEL", str, "the model name clients send (with --upstream-model)"),
    "upstream_model": ("GATEWAY_UPSTREAM_MODEL", str, "the provider's name for it; other models get 404"),
    "allow_anonymous": ("GATEWAY_ALLOW_ANONYMOUS", bool, "serve without API keys (auth.api_keys: false)"),
    "sagemaker_contract": (
        "GATEWAY_SAGEMAKER_CONTRACT",
        bool,
        "serve /ping and IAM-authenticated /invocations",
    ),
    "workers": ("GATEWAY_WORKERS", int, "server processes"),
    "max_body_bytes": ("GATEWAY_MAX_BODY_BYTES", int, "largest request body (413 above)"),
    "rpm_per_key": ("GATEWAY_RPM_PER_KEY", int, "requests per minute per key (429 above)"),
    "concurrency_per_key": ("GATEWAY_CONCURRENCY_PER_KEY", int, "concurrent requests per key (429 above)"),
    "connect_timeout": ("GATEWAY_CONNECT_TIMEOUT", float, "seconds to connect to the upstream"),
    "first_byte_timeout": ("GATEWAY_FIRST_BYTE_TIMEOUT", float, "seconds to the upstream's response headers"),
    "connect_retries": ("GATEWAY_CONNECT_RETRIES", int, "retries when the upstream refused the connection"),
    "keepalive_interval": (
        "GATEWAY_KEEPALIVE_INTERVAL",
        float,
        "seconds of upstream silence per SSE comment",
    ),
    "keep_alive_timeout": (
        "GATEWAY_KEEP_ALIVE_TIMEOUT",
        float,
        "seconds an idle client connection stays open (above the load balancer's idle timeout)",
    ),
    "upstream_timeout": ("GATEWAY_UPSTREAM_TIMEOUT", float, "seconds the upstream may take to answer"),
    "upstream_idle_timeout": (
        "GATEWAY_UPSTREAM_IDLE_TIMEOUT",
        float,
        "seconds an idle upstream connection is kept for reuse",
    ),
    "max_header_bytes": ("GATEWAY_MAX_HEADER_BYTES", int, "largest request line + headers (431 above)"),
    "metrics_port": (
        "GATEWAY_METRICS_PORT",
        int,
        "port of /metrics, which the load balancer does not forward",
    ),
    "ready_cache_seconds": ("GATEWAY_READY_CACHE_SECONDS", float, "seconds a /ready answer is reused"),
    "clients_parameter": ("GATEWAY_CLIENTS_PARAMETER", str, "SSM parameter naming the clients and limits"),
    "clients_refresh_interval": (
        "GATEWAY_CLIENTS_REFRESH_INTERVAL",
        float,
        "seconds between reads of the clients parameter and secrets",
    ),
    "provider_key_refresh_interval": (
        "GATEWAY_PROVIDER_KEY_REFRESH_INTERVAL",
        float,
        "seconds between reads of the provider key secret",
    ),
    "metrics_stack": ("GATEWAY_METRICS_STACK", str, "the Stack dimension of the usage metrics"),
    "usage_metrics": ("GATEWAY_USAGE_METRICS", bool, "usage per client as CloudWatch EMF lines on stdout"),
    "usage_flush_interval": ("GATEWAY_USAGE_FLUSH_INTERVAL", float, "seconds per usage metrics line"),
    "gauge_metrics": ("GATEWAY_GAUGE_METRICS", bool, "load gauges (in flight, engine queue) as EMF lines"),
    "gauge_interval": ("GATEWAY_GAUGE_INTERVAL", float, "seconds per load gauges line"),
    "engine_metrics_url": (
        "GATEWAY_ENGINE_METRICS_URL",
        str,
        "the engine's Prometheus /metrics (default: beside a vllm upstream's /v1)",
    ),
    "engine_version": ("ENGINE_VERSION", str, "the vLLM release behind the gateway (its metric names)"),
    "shutdown_grace": ("GATEWAY_SHUTDOWN_GRACE", float, "seconds in-flight requests get after SIGTERM"),
    "key_refresh_interval": ("GATEWAY_KEY_REFRESH_INTERVAL", float, "seconds between key refreshes"),
    "key_refresh_min_interval": (
        "GATEWAY_KEY_REFRESH_MIN_INTERVAL",
        float,
        "least seconds between refreshes",
    ),
    "image_domains": ("GATEWAY_IMAGE_DOMAINS", str, "comma-separated domains remote images may come from"),
    "max_images": ("GATEWAY_MAX_IMAGES", int, "image parts per request"),
    "max_image_bytes": ("GATEWAY_MAX_IMAGE_BYTES", int, "bytes per image"),
    "log_requests": ("GATEWAY_LOG_REQUESTS", bool, "one JSON line per request on stdout"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-server",
        description="OpenAI-compatible gateway: auth, limits, streaming, errors, metrics before an engine.",
    )
    for name, (env, kind, help_text) in _OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{help_text} [{env}]",
            )
        else:
            parser.add_argument(flag, dest=name, type=kind, default=None, help=f"{help_text} [{env}]")
    return parser


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then environment variables, then defaults."""
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(list(argv or [])))
    values: dict[str, object] = {}
    for name, (env_name, kind, _) in _OPTIONS.items():
        raw = args.get(name)
        if raw is None and env.get(env_name) not in (None, ""):
            text = env[env_name]
            raw = _bool(text) if kind is bool else text if kind is str else kind(text)
        if raw is None:
            continue
        if name in {"api_keys", "image_domains"}:
            raw = _csv(str(raw))
        values[name] = raw
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.upstream not in UPSTREAM_KINDS:
        raise SystemExit(f"--upstream must be one of {', '.join(UPSTREAM_KINDS)}, not {settings.upstream!r}")
    if settings.upstream == "sagemaker" and not settings.sagemaker_endpoint:
        raise SystemExit("--upstream sagemaker needs --sagemaker-endpoint")
    if settings.gauge_interval <= 0:
        raise SystemExit(f"--gauge-interval must be above 0 seconds, not {settings.gauge_interval}")
    return settings


def to_environ(settings: Settings) -> dict[str, str]:
    """The environment that makes `load([])` in a worker process return these settings."""
    out: dict[str, str] = {}
    for name, (env_name, kind, _) in _OPTIONS.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            out[env_name] = ",".join(value)
        elif kind is bool:
            out[env_name] = "1" if value else "0"
        else:
            out[env_name] = str(value)
    return out
