"""The CloudWatch metrics the gateway publishes, as the stacks rely on them (alarms, scaling, dashboards).

The gateway writes them as embedded metric format lines in its log stream (inference_server/usage.py and
its engine gauges); CloudWatch Logs extracts them. The gateway cannot import this module (the wall between
inference_server/ and templates/), so tests/inference_server checks that what it writes matches these names.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

NAMESPACE = "deployctl/Gateway"
STACK_DIMENSION = "Stack"
CLIENT_DIMENSION = "Client"

# Per request, summed over the flush interval; dimension sets [Stack] and [Stack, Client].
REQUESTS = "Requests"
ERRORS = "Errors"
PROMPT_TOKENS = "PromptTokens"
COMPLETION_TOKENS = "CompletionTokens"
LATENCY = "Latency"  # Milliseconds
USAGE_METRICS = (REQUESTS, ERRORS, PROMPT_TOKENS, COMPLETION_TOKENS, LATENCY)

# Per-task gauges, published every few seconds with dimension set [Stack] alone: the Average over all the
# tasks' data points in a period is the per-task average target tracking needs.
REQUESTS_IN_FLIGHT = "RequestsInFlight"  # Count
ENGINE_REQUESTS_WAITING = "EngineRequestsWaiting"  # Count: vllm:num_requests_waiting
ENGINE_REQUESTS_RUNNING = "EngineRequestsRunning"  # Count: vllm:num_requests_running
ENGINE_KV_CACHE_USAGE = "EngineKvCacheUsage"  # Percent, 0-100
GAUGES = (REQUESTS_IN_FLIGHT, ENGINE_REQUESTS_WAITING, ENGINE_REQUESTS_RUNNING, ENGINE_KV_CACHE_USAGE)

# Per streamed request (Milliseconds), dimension sets [Stack] and [Stack, Client].
TIME_TO_FIRST_TOKEN = "TimeToFirstToken"  # noqa: S105 - a metric name
