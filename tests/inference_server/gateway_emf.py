"""The embedded metric format as CloudWatch Logs reads it: a strict check, then the metrics it extracts.

From AWS's specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
the log event is one JSON object; its root member `_aws` holds `Timestamp` (milliseconds since the
epoch) and `CloudWatchMetrics`, an array of metric directives, each with `Namespace`, `Dimensions` (an
array of dimension sets, each of at most 30 root member names whose values are strings) and `Metrics`
(at most 100 definitions of `Name`, optional `Unit` and `StorageResolution` 1 or 60). Every referenced
member must be at the root; a metric's value is a number or an array of at most 100 numbers. Objects
the specification defines take no other members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# CloudWatch's StandardUnit values (the MetricDatum API reference).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip
MAX_METRICS = 100
MAX_DIMENSIONS = 30
MAX_VALUES = 100
MAX_EVENT_BYTES = 256 * 1024  # a CloudWatch Logs event; EMF documents share the limit


@dataclass(frozen=True)
class Extracted:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    unit: str | None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(line: bytes) -> dict[str, Any]:
    """The document, after asserting it is valid EMF; AssertionError names the first violation."""
    assert len(line) <= MAX_EVENT_BYTES, "larger than a log event"
    document = orjson.loads(line)
    assert isinstance(document, dict), "the root is not an object"
    aws = document.get("_aws")
    assert isinstance(aws, dict), "no _aws metadata object"
    assert set(aws) <= {"Timestamp", "CloudWatchMetrics"}, f"unknown _aws members {set(aws)}"
    stamp = aws.get("Timestamp")
    assert isinstance(stamp, int) and stamp > 10**12, f"Timestamp {stamp!r} is not epoch milliseconds"
    directives = aws.get("CloudWatchMetrics")
    assert isinstance(directives, list) and directives, "CloudWatchMetrics is not a non-empty array"
    for directive in directives:
        assert isinstance(directive, dict), "a metric directive is not an object"
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}, f"directive members {set(directive)}"
        namespace = directive["Namespace"]
        assert isinstance(namespace, str) and 1 <= len(namespace) <= 255 and not namespace.startswith(":")
        assert isinstance(directive["Dimensions"], list), "Dimensions is not an array"
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= MAX_DIMENSIONS
            for key in dimension_set:
                value = document.get(key)
                assert isinstance(value, str) and 1 <= len(value) <= 1024, f"dimension {key} is not text"
        metrics = directive["Metrics"]
        assert isinstance(metrics, list) and 1 <= len(metrics) <= MAX_METRICS, "Metrics: 1 to 100 items"
        for metric in metrics:
            assert isinstance(metric, dict) and set(metric) <= {"Name", "Unit", "StorageResolution"}
            name = metric.get("Name")
            assert isinstance(name, str) and 1 <= len(name) <= 255
            assert metric.get("Unit", "None") in UNITS, f"unit {metric.get('Unit')!r}"
            assert metric.get("StorageResolution", 60) in (1, 60)
            value = document.get(name)
            assert value is not None, f"metric {name} has no root member"
            if isinstance(value, list):
                assert 1 <= len(value) <= MAX_VALUES and all(_number(v) for v in value), name
            else:
                assert _number(value), f"metric {name} is not a number"
    return document


def extract(line: bytes) -> list[Extracted]:
    """What CloudWatch stores from one valid line: each metric under each of its dimension sets."""
    document = check(line)
    out = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                out.append(
                    Extracted(
                        directive["Namespace"],
                        metric["Name"],
                        tuple(sorted((key, document[key]) for key in dimension_set)),
                        tuple(value) if isinstance(value, list) else (value,),
                        metric.get("Unit"),
                    )
                )
    return out
