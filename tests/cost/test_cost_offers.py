"""Validation against the price table: a type the AWS Price List does not sell on demand in the region is
an error (SPEC240) where the table read the region in full; a type without a price where it did not is a
warning (SPEC241, its corpus case is tests/spec/corpus/deployments/dev/unpriced-type.yaml)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tooling import repository
from tooling.cost import table

SPEC = """\
name: probe
owner: team@example.com
region: us-east-1
model: {{id: meta-llama/Llama-3.1-8B-Instruct}}
engine: {{type: vllm}}
compute: {{service: {service}, instance_type: {instance_type}}}
"""


@pytest.fixture
def complete_table(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The committed table, with us-east-1 read in full and two types AWS would not have priced."""
    data = copy.deepcopy(table.prices())
    region = data["regions"]["us-east-1"]
    region["complete"]["sagemaker"] = True
    del region["sagemaker"]["ml.g6.xlarge"]
    del region["ec2"]["g6e.xlarge"]
    monkeypatch.setattr(table, "prices", lambda: data)
    return data


def diagnostics(tmp_path: Path, service: str, instance_type: str) -> list[tuple[str, str, str]]:
    folder = tmp_path / "deployments/dev"
    folder.mkdir(parents=True)
    (folder / "probe.yaml").write_text(
        SPEC.format(service=service, instance_type=instance_type), encoding="utf-8"
    )
    result = repository.load(tmp_path)
    return [(str(d.severity), d.code, d.message) for d in result.diagnostics]


@pytest.mark.parametrize(
    ("service", "instance_type"), [("sagemaker", "ml.g6.xlarge"), ("ecs-gpu", "g6e.xlarge")]
)
def test_a_type_the_price_list_does_not_sell_is_an_error(
    complete_table: dict, tmp_path: Path, service: str, instance_type: str
) -> None:
    found = [d for d in diagnostics(tmp_path, service, instance_type) if d[1] == "SPEC240"]
    assert found == [
        (
            "error",
            "SPEC240",
            f"{instance_type} has no on-demand price in us-east-1 in the AWS Price List: "
            "it is not sold on demand there",
        )
    ]


def test_a_priced_type_is_fine(complete_table: dict, tmp_path: Path) -> None:
    assert not [d for d in diagnostics(tmp_path, "sagemaker", "ml.g5.xlarge") if d[1].startswith("SPEC24")]


def test_with_the_committed_table_sagemaker_availability_is_cfn_lints(tmp_path: Path) -> None:
    # us-east-1 SageMaker was recorded only in part: absence proves nothing, so SPEC240 stays quiet.
    assert not table.section_complete("us-east-1", "sagemaker")
    assert not [d for d in diagnostics(tmp_path, "sagemaker", "ml.g6.xlarge") if d[1].startswith("SPEC24")]
