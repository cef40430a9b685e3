"""The CloudWatch names the gateway publishes: its own copy of templates/gateway_metrics.py.

The gateway must not import templates/ (it ships alone in its image), so the names are repeated here;
tests/inference_server/test_gateway_engine_metrics.py fails if the two copies ever disagree. Alarms,
dashboards and scaling policies in the stacks name these metrics.
"""

from __future__ import annotations

NAMESPACE = "deployctl/Gateway"
STACK_DIMENSION = "Stack"
CLIENT_DIMENSION = "Client"

REQUESTS = "Requests"
ERRORS = "Errors"
PROMPT_TOKENS = "PromptTokens"
COMPLETION_TOKENS = "CompletionTokens"
LATENCY = "Latency"
USAGE_METRICS = (REQUESTS, ERRORS, PROMPT_TOKENS, COMPLETION_TOKENS, LATENCY)

REQUESTS_IN_FLIGHT = "RequestsInFlight"
ENGINE_REQUESTS_WAITING = "EngineRequestsWaiting"
ENGINE_REQUESTS_RUNNING = "EngineRequestsRunning"
ENGINE_KV_CACHE_USAGE = "EngineKvCacheUsage"
GAUGES = (REQUESTS_IN_FLIGHT, ENGINE_REQUESTS_WAITING, ENGINE_REQUESTS_RUNNING, ENGINE_KV_CACHE_USAGE)

TIME_TO_FIRST_TOKEN = "TimeToFirstToken"  # noqa: S105 - a metric name

UNITS = {
    REQUESTS: "Count",
    ERRORS: "Count",
    PROMPT_TOKENS: "Count",
    COMPLETION_TOKENS: "Count",
    LATENCY: "Milliseconds",
    REQUESTS_IN_FLIGHT: "Count",
    ENGINE_REQUESTS_WAITING: "Count",
    ENGINE_REQUESTS_RUNNING: "Count",
    ENGINE_KV_CACHE_USAGE: "Percent",
    TIME_TO_FIRST_TOKEN: "Milliseconds",
}
