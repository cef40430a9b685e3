"""`deployctl usage`: requests, tokens, errors and latency per client, from CloudWatch.

The gateway writes its usage as CloudWatch embedded metric format lines (namespace deployctl/Gateway,
dimensions [Stack] and [Stack, Client]; see inference_server/usage.py); CloudWatch Logs turns them into
metrics. This reads them back with ListMetrics (which clients exist) and GetMetricData (their sums),
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html: at most 500
queries a call, paged with NextToken; a period is a multiple of 60 s.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "deployctl/Gateway"
_SUMS = ("Requests", "Errors", "PromptTokens", "CompletionTokens")
_MAX_QUERIES = 500
_SINCE = re.compile(r"^(\d+)([mhd])$")


@dataclass
class ClientUsage:
    client: str
    requests: float = 0
    errors: float = 0
    prompt_tokens: float = 0
    completion_tokens: float = 0
    latency_ms_average: float | None = None
    latency_ms_max: float | None = None
    _latency_weight: float = field(default=0, repr=False)


def parse_since(text: str) -> datetime.timedelta:
    """`30m`, `24h`, `7d`: how far back to look."""
    found = _SINCE.match(text.strip())
    if not found:
        raise ValueError(f"--since takes <number>m, h or d (30m, 24h, 7d), not {text!r}")
    number, unit = int(found.group(1)), found.group(2)
    return datetime.timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: number})


def clients_of(cloudwatch: Any, stack: str) -> list[str]:
    names: set[str] = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=NAMESPACE, MetricName="Requests", Dimensions=[{"Name": "Stack", "Value": stack}]
    ):
        for metric in page["Metrics"]:
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            if set(dimensions) == {"Stack", "Client"}:
                names.add(dimensions["Client"])
    return sorted(names)


def usage(cloudwatch: Any, stack: str, start: datetime.datetime, end: datetime.datetime) -> list[ClientUsage]:
    """One row per client seen between start and end, sums over the whole span."""
    clients = clients_of(cloudwatch, stack)
    period = max(60, math.ceil((end - start).total_seconds() / 60) * 60)
    queries: list[dict[str, Any]] = []
    for index, client in enumerate(clients):
        dimensions = [{"Name": "Stack", "Value": stack}, {"Name": "Client", "Value": client}]
        wanted = [(name, "Sum") for name in _SUMS] + [("Latency", "Average"), ("Latency", "Maximum")]
        for name, stat in wanted:
            queries.append(
                {
                    "Id": f"q{index}_{name.lower()}_{stat.lower()}",
                    "MetricStat": {
                        "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    rows = {client: ClientUsage(client) for client in clients}
    by_id = {}
    for index, client in enumerate(clients):
        by_id[f"q{index}"] = client
    for offset in range(0, len(queries), _MAX_QUERIES):
        batch = queries[offset : offset + _MAX_QUERIES]
        token = None
        while True:
            kwargs: dict[str, Any] = {"MetricDataQueries": batch, "StartTime": start, "EndTime": end}
            if token:
                kwargs["NextToken"] = token
            answer = cloudwatch.get_metric_data(**kwargs)
            for result in answer["MetricDataResults"]:
                prefix, name, stat = result["Id"].split("_")
                row = rows[by_id[prefix]]
                values = result.get("Values") or []
                if not values:
                    continue
                if stat == "sum":
                    attribute = {
                        "requests": "requests",
                        "errors": "errors",
                        "prompttokens": "prompt_tokens",
                        "completiontokens": "completion_tokens",
                    }[name]
                    setattr(row, attribute, getattr(row, attribute) + sum(values))
                elif stat == "average":
                    row.latency_ms_average = sum(values) / len(values)
                else:
                    row.latency_ms_max = max(values)
            token = answer.get("NextToken")
            if not token:
                break
    return [rows[client] for client in clients]
