"""Settings the deployment stacks use: one model under its own name, anonymous endpoints, injected keys."""

from __future__ import annotations

import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import running, settings_for


def test_one_model_under_the_deployment_s_name(fresh_upstream: FakeUpstream) -> None:
    settings = settings_for(fresh_upstream.url, served_model="vision", upstream_model="gpt-4o")
    with running(settings) as gateway:
        client = gateway.client()
        assert [m.id for m in client.models.list()] == ["vision"]
        reply = client.chat.completions.create(model="vision", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        assert fresh_upstream.seen[-1].body["model"] == "gpt-4o"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.body["code"] == "model_not_found"


def test_anonymous_endpoints_take_no_key(fresh_upstream: FakeUpstream) -> None:
    with running(settings_for(fresh_upstream.url, api_keys=(), allow_anonymous=True)) as gateway:
        reply = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert reply.status_code == 200


def test_without_keys_or_anonymous_the_gateway_refuses_to_start(fresh_upstream: FakeUpstream) -> None:
    from inference_server.app import build_gateway

    with pytest.raises(SystemExit, match="no API keys"):
        build_gateway(settings_for(fresh_upstream.url, api_keys=()))


def test_an_injected_provider_key_is_sent_upstream(
    fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_PROVIDER_KEY", "sk-provider-injected-by-ecs")
    settings = settings_for(fresh_upstream.url, upstream="external", provider_key_secret=None)
    with running(settings) as gateway:
        gateway.client().models.list()
    assert fresh_upstream.seen[-1].headers["authorization"] == "Bearer sk-provider-injected-by-ecs"
