"""Tests of tooling/cost/: the price table and its refresh, the schedule model, each component, renderings."""

from __future__ import annotations

from typing import Any

from tooling.spec import Deployment

VLLM = {"type": "vllm"}
EXTERNAL = {
    "type": "external",
    "base_url": "https://api.openai.com/v1",
    "provider_key_secret": "team/openai-key",
}


def make_spec(**sections: Any) -> Deployment:
    """A valid Deployment: a g5.xlarge ecs-gpu vLLM endpoint in us-east-1 unless `sections` say otherwise."""
    data: dict[str, Any] = {
        "name": "probe",
        "owner": "team@example.com",
        "region": "us-east-1",
        "model": {"id": "gpt-4o"} if sections.get("engine") == EXTERNAL else {"id": "org/model"},
        "engine": VLLM,
        "compute": {"service": "ecs-gpu", "instance_type": "g5.xlarge"},
    }
    data.update(sections)
    return Deployment.model_validate(data)
