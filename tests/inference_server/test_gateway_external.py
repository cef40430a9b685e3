"""External mode: provider errors never pass verbatim, the provider key is re-read on rotation, /ready
spends no provider call; /metrics on its own port and /ready cached (issue 13, items 7 and 8)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import httpx
import openai
import orjson
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_servers import completion, uvicorn_server
from gateway_support import running, settings_for


class Provider:
    """An OpenAI-compatible provider (ASGI on uvicorn) that accepts one key at a time."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.calls: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.calls.append(scope["path"])
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth != f"Bearer {self.key}":
            presented = auth.removeprefix("Bearer ")
            body = orjson.dumps(
                {
                    "error": {
                        "message": f"Incorrect API key provided: {presented[:3]}****{presented[-4:]}.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                }
            )
            status = 401
        else:
            body, status = completion("from the provider", model="provider-model"), 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _secret(value: str) -> tuple[Any, str]:
    client = boto3.client("secretsmanager")
    name = f"provider-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString=value)
    return client, name


@pytest.mark.slow
def test_a_provider_401_is_an_upstream_auth_error_without_provider_details(moto_endpoint: str) -> None:
    _, name = _secret("sk-provider-old-9876")
    provider = Provider("sk-provider-other-1111")
    with uvicorn_server(provider) as port:
        settings = settings_for(f"http://127.0.0.1:{port}/v1", upstream="external", provider_key_secret=name)
        with running(settings) as gateway, pytest.raises(openai.APIStatusError) as caught:
            gateway.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert not isinstance(error, openai.AuthenticationError)
    assert error.status_code == 502
    assert error.body["code"] == "upstream_auth"  # type: ignore[index]
    text = error.response.text
    assert "9876" not in text and "invalid_api_key" not in text and "Incorrect API key" not in text


@pytest.mark.slow
def test_a_rotated_provider_key_is_picked_up_without_a_restart(moto_endpoint: str) -> None:
    client, name = _secret("sk-provider-first")
    provider = Provider("sk-provider-first")
    with uvicorn_server(provider) as port:
        settings = settings_for(
            f"http://127.0.0.1:{port}/v1",
            upstream="external",
            provider_key_secret=name,
            provider_key_refresh_interval=3600,
        )
        with running(settings) as gateway:
            sdk = gateway.client()
            ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            assert sdk.chat.completions.create(**ask).choices[0].message.content == "from the provider"  # type: ignore[call-overload]
            # Rotated at the provider and in the secret: the next request is answered with the new key.
            client.put_secret_value(SecretId=name, SecretString="sk-provider-second")
            provider.key = "sk-provider-second"
            assert sdk.chat.completions.create(**ask).choices[0].message.content == "from the provider"  # type: ignore[call-overload]


@pytest.mark.slow
def test_ready_in_external_mode_spends_no_provider_call(moto_endpoint: str) -> None:
    _, name = _secret("sk-provider-first")
    provider = Provider("sk-provider-first")
    with uvicorn_server(provider) as port:
        settings = settings_for(f"http://127.0.0.1:{port}/v1", upstream="external", provider_key_secret=name)
        with running(settings) as gateway, httpx.Client(timeout=10) as http:
            statuses = {http.get(gateway.url + "/ready").status_code for _ in range(20)}
            # vLLM-only routes get a clear 404 from a provider deployment, before any provider call.
            tokenize = http.post(
                gateway.url + "/tokenize",
                json={"model": "m", "prompt": "hi"},
                headers={"Authorization": f"Bearer {settings.api_keys[0]}"},
            )
    assert statuses == {200}
    assert provider.calls == []
    assert tokenize.status_code == 404
    assert tokenize.json()["error"]["code"] == "route_not_supported"


def test_ready_is_cached(fresh_upstream: FakeUpstream) -> None:
    with (
        running(settings_for(fresh_upstream.url, ready_cache_seconds=5)) as gateway,
        httpx.Client(timeout=10) as http,
    ):
        assert {http.get(gateway.url + "/ready").status_code for _ in range(25)} == {200}
    assert len([s for s in fresh_upstream.seen if s.path == "/v1/models"]) == 1


def test_metrics_are_on_their_own_port_only(gateway: Any) -> None:
    with httpx.Client(timeout=10) as http:
        assert http.get(gateway.url + "/metrics").status_code == 404
        scraped = http.get(gateway.metrics_url)
        assert http.get(gateway.metrics_url.replace("/metrics", "/other")).status_code == 404
    assert scraped.status_code == 200
    assert "gateway_requests_in_flight" in scraped.text
    assert gateway.gateway.metrics_server.port != gateway.port


def test_metrics_port_defaults_to_the_contracts() -> None:
    from inference_server.config import load

    assert load([], {}).metrics_port == 9100
    assert load([], {"GATEWAY_METRICS_PORT": "9200"}).metrics_port == 9200
