"""`deployctl usage ENV/NAME`: the per-client table read back from CloudWatch (moto, server mode).

The metrics are put as CloudWatch Logs extracts them from the gateway's EMF lines: namespace
deployctl/Gateway, dimensions [Stack, Client] (and [Stack] alone, which names no client).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from tooling import usage
from tooling.cli import cli

pytestmark = pytest.mark.slow
SPEC = """\
name: chat
owner: team@example.com
region: us-east-1
model: {id: org/fake, served_name: fake-model}
engine: {type: vllm}
compute: {service: ecs-gpu, instance_type: g5.xlarge}
"""


def _put(cloudwatch: object, dimensions: list[dict[str, str]], values: dict[str, float]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    cloudwatch.put_metric_data(  # type: ignore[attr-defined]
        Namespace=usage.NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Value": value,
                "Unit": "Milliseconds" if name == "Latency" else "Count",
                "Timestamp": now - datetime.timedelta(minutes=5),
            }
            for name, value in values.items()
        ],
    )


def test_usage_table_per_client(aws_env: str, tmp_path: Path) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for client, requests, prompt in (("team-a", 10, 700), ("team-b", 3, 21)):
        dims = [{"Name": "Stack", "Value": "dev-chat"}, {"Name": "Client", "Value": client}]
        _put(cloudwatch, dims, {"Requests": requests, "Errors": 1, "PromptTokens": prompt,
                                "CompletionTokens": 40, "Latency": 120.0})  # fmt: skip
    # The stack-wide series and another stack's clients are not this deployment's clients.
    _put(cloudwatch, [{"Name": "Stack", "Value": "dev-chat"}], {"Requests": 13})
    _put(
        cloudwatch,
        [{"Name": "Stack", "Value": "dev-other"}, {"Name": "Client", "Value": "x"}],
        {"Requests": 1},
    )

    rows = usage.usage(
        cloudwatch,
        "dev-chat",
        datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1),
        datetime.datetime.now(datetime.UTC),
    )
    assert [(r.client, r.requests, r.prompt_tokens) for r in rows] == [("team-a", 10, 700), ("team-b", 3, 21)]
    assert rows[0].latency_ms_average == 120.0

    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "usage", "dev/chat", "--since", "2h"])
    assert result.exit_code == 0, result.output
    assert "team-a" in result.output and "700" in result.output
    assert "team-b" in result.output
    assert " x " not in result.output


def test_since_is_validated() -> None:
    assert usage.parse_since("30m") == datetime.timedelta(minutes=30)
    assert usage.parse_since("7d") == datetime.timedelta(days=7)
    with pytest.raises(ValueError, match="--since"):
        usage.parse_since("yesterday")
