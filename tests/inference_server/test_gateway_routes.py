"""Route parity with vLLM's OpenAI server, through the gateway's auth and usage, with the `openai` SDK."""

from __future__ import annotations

import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, RunningGateway


def test_responses_create(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    response = gateway.client().responses.create(model="fake-model", input="hi")
    assert response.output_text == "hello there"
    assert response.usage is not None and response.usage.input_tokens == 5
    assert fresh_upstream.seen[-1].path == "/v1/responses"


def test_responses_create_streamed(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    stream = gateway.client().responses.create(model="fake-model", input="hi", stream=True)
    events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["hello", " there"]
    assert events[-1].type == "response.completed"


def test_models_retrieve_through_the_sdk(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    assert gateway.client().models.retrieve("fake-model").owned_by == "fake"


def test_audio_transcriptions_multipart(gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    audio = b"RIFF" + b"\0" * 2000
    result = gateway.client().audio.transcriptions.create(model="fake-model", file=("a.wav", audio))
    assert result.text == "heard 2004 bytes"
    assert fresh_upstream.seen[-1].body["model"] == "fake-model"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tokenize", {"model": "fake-model", "prompt": "a b c"}, "count"),
        ("/detokenize", {"model": "fake-model", "tokens": [1, 2]}, "prompt"),
        ("/v1/rerank", {"model": "fake-model", "query": "q", "documents": ["a", "b"]}, "results"),
        ("/v1/score", {"model": "fake-model", "text_1": "a", "text_2": "b"}, "data"),
    ],
)
def test_vllm_routes(
    gateway: RunningGateway, fresh_upstream: FakeUpstream, path: str, body: dict, field: str
) -> None:
    with httpx.Client(timeout=10) as http:
        anonymous = http.post(gateway.url + path, json=body)
        answered = http.post(gateway.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert anonymous.status_code == 401
    assert answered.status_code == 200, answered.text
    assert field in answered.json()
    assert fresh_upstream.seen[-1].path == path


def test_transcriptions_need_a_key(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.client(api_key="sk-wrong").audio.transcriptions.create(model="m", file=("a.wav", b"RIFF"))
