"""Client keys: missing, malformed or unknown keys get 401; a key rotation (moto) fails no request."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, RunningGateway, running, settings_for

from inference_server.auth import KeyStore, keys_from_secret_string, secret_fetcher


def test_missing_key_is_401(gateway: RunningGateway) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.post(gateway.url + "/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer x y", KEY, "Token " + KEY])
def test_malformed_authorization_is_401(gateway: RunningGateway, header: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(gateway.url + "/v1/models", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_wrong_key_is_401_with_the_openai_client(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.client(api_key="sk-wrong").models.list()
    assert caught.value.status_code == 401
    # The presented key is never echoed back.
    assert "sk-wrong" not in str(caught.value.body)


def test_health_needs_no_key_but_the_api_does(gateway: RunningGateway) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(gateway.url + "/health").status_code == 200
        assert client.get(gateway.url + "/v1/models").status_code == 401


def test_keys_from_a_file(upstream: FakeUpstream, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# local keys\nsk-file-one\n\nsk-file-two\n")
    with running(settings_for(upstream.url, api_keys=(), api_keys_file=str(keys))) as gateway:
        assert gateway.client(api_key="sk-file-two").models.list().data
        with pytest.raises(openai.AuthenticationError):
            gateway.client(api_key=KEY).models.list()


def test_secret_string_formats() -> None:
    assert keys_from_secret_string("  sk-plain \n") == ["sk-plain"]
    assert keys_from_secret_string('["a", "b", 3]') == ["a", "b"]
    assert keys_from_secret_string('{"api_key": "k"}') == ["k"]
    assert keys_from_secret_string('{"api_keys": ["x", "y"]}') == ["x", "y"]
    assert keys_from_secret_string("") == []


# -- Secrets Manager rotation, against moto in server mode ----------------------------------------


@pytest.fixture
def secret(moto_endpoint: str) -> Iterator[tuple[object, str]]:
    client = boto3.client("secretsmanager")
    name = f"gateway-key-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString="sk-first")
    yield client, name
    client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def _rotate(client: object, name: str, new_key: str) -> None:
    """What a rotation lambda does: put AWSPENDING, then promote it to AWSCURRENT."""
    sm = client
    token = str(uuid.uuid4())
    sm.put_secret_value(
        SecretId=name,
        ClientRequestToken=token,
        SecretString=new_key,  # type: ignore[attr-defined]
        VersionStages=["AWSPENDING"],
    )
    described = sm.describe_secret(SecretId=name)  # type: ignore[attr-defined]
    current = next(v for v, stages in described["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    sm.update_secret_version_stage(  # type: ignore[attr-defined]
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    sm.update_secret_version_stage(  # type: ignore[attr-defined]
        SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )


@pytest.mark.slow
def test_rotation_keeps_previous_key_and_accepts_the_new_one(secret: tuple[object, str]) -> None:
    client, name = secret

    async def scenario() -> None:
        store = KeyStore((), secret_fetcher(client, name), refresh_interval=3600, min_refresh_interval=0)
        await store.start()
        try:
            assert await store.check("sk-first")
            assert await store.check("sk-unknown") is None
            _rotate(client, name, "sk-second")
            # The new key works on first use (an unknown key triggers one refresh)...
            assert await store.check("sk-second")
            # ...and the previous one still does: it is AWSPREVIOUS now.
            assert await store.check("sk-first")
            _rotate(client, name, "sk-third")
            await store.refresh()
            # Two rotations later the first key is neither current nor previous.
            assert await store.check("sk-first") is None
            assert await store.check("sk-second")
        finally:
            await store.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_pending_key_is_accepted_during_a_rotation(secret: tuple[object, str]) -> None:
    client, name = secret
    client.put_secret_value(  # type: ignore[attr-defined]
        SecretId=name,
        ClientRequestToken=str(uuid.uuid4()),
        SecretString="sk-pending",
        VersionStages=["AWSPENDING"],
    )

    async def scenario() -> None:
        store = KeyStore((), secret_fetcher(client, name), refresh_interval=3600, min_refresh_interval=0)
        await store.start()
        try:
            assert await store.check("sk-pending")
            assert await store.check("sk-first")
        finally:
            await store.close()

    asyncio.run(scenario())


def test_unknown_key_refreshes_are_rate_limited() -> None:
    calls: list[int] = []

    def fetch() -> list[str]:
        calls.append(1)
        return ["sk-known"]

    async def scenario() -> None:
        store = KeyStore((), fetch, refresh_interval=3600, min_refresh_interval=3600)
        await store.start()
        assert len(calls) == 1
        # Within the interval an unknown key gets no refresh of its own (Secrets Manager is not
        # hammered) and is refused at once (it does not wait for the next allowed refresh).
        assert await asyncio.wait_for(store.check("sk-unknown"), 0.2) is None
        assert len(calls) == 1
        assert await store.check("sk-known")
        await store.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_rotation_under_load_fails_no_request(
    secret: tuple[object, str], upstream: FakeUpstream, tmp_path: Path
) -> None:
    client, name = secret
    settings = settings_for(
        upstream.url,
        api_keys=(),
        api_key_secret=name,
        key_refresh_interval=3600,
        key_refresh_min_interval=0.2,
        rpm_per_key=0,
        concurrency_per_key=0,
    )
    log = tmp_path / "access.log"
    with running(settings, log) as gateway:
        statuses: list[int] = []
        current = {"key": "sk-first"}
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(timeout=20) as http:
                while not stop.is_set():
                    response = http.get(
                        gateway.url + "/v1/models", headers={"Authorization": f"Bearer {current['key']}"}
                    )
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for new_key in ("sk-second", "sk-third"):
                while len(statuses) < 20:
                    stop.wait(0.01)
                _rotate(client, name, new_key)
                # Clients switch to the new key at once, before any background refresh.
                current["key"] = new_key
                seen = len(statuses)
                while len(statuses) < seen + 40:
                    stop.wait(0.01)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert len(statuses) >= 100
        assert set(statuses) == {200}
        # After two rotations: the previous key still works, the one before it is refused.
        assert gateway.client(api_key="sk-second").models.list().data
        with pytest.raises(openai.AuthenticationError):
            gateway.client(api_key="sk-first").models.list()
    text = log.read_text()
    for key in ("sk-first", "sk-second", "sk-third"):
        assert key not in text
