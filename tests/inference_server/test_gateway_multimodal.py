"""The image guard: data: URLs or allowlisted domains only, size and count limits, no private targets."""

from __future__ import annotations

import asyncio
import base64

import openai
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import running, settings_for

from inference_server.errors import GatewayError
from inference_server.multimodal import ImageGuard, is_public_address

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def _image_message(*urls: str) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = [{"type": "text", "text": "what is this?"}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": parts}]


def _check(guard: ImageGuard, *urls: str) -> None:
    asyncio.run(guard.check({"messages": _image_message(*urls)}))


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:169.254.169.254",
        "224.0.0.1",
    ],
)
def test_private_loopback_and_link_local_are_not_public(address: str) -> None:
    assert not is_public_address(address)


def test_public_addresses_are_public() -> None:
    assert is_public_address("93.184.216.34")
    assert is_public_address("2606:2800:220:1:248:1893:25c8:1946")


def test_data_urls_within_limits_pass() -> None:
    _check(ImageGuard((), max_images=2, max_image_bytes=1024), PNG, PNG)


def test_too_many_images_or_too_large_are_refused() -> None:
    guard = ImageGuard((), max_images=2, max_image_bytes=1024)
    with pytest.raises(GatewayError, match="at most 2 images"):
        _check(guard, PNG, PNG, PNG)
    big = "data:image/png;base64," + "A" * 4000
    with pytest.raises(GatewayError, match="larger than 1024 bytes"):
        _check(guard, big)
    with pytest.raises(GatewayError, match="data:image"):
        _check(guard, "data:text/html;base64,PHNjcmlwdD4=")


def test_remote_images_need_an_allowlisted_domain() -> None:
    guard = ImageGuard(("images.example.com",), max_images=4, max_image_bytes=1024)
    for url in (
        "https://evil.example.net/a.png",
        "https://images.example.com.evil.net/a.png",
        "file:///etc/passwd",
        "ftp://images.example.com/a.png",
    ):
        with pytest.raises(GatewayError):
            _check(guard, url)


def test_allowlisted_domain_resolving_to_a_private_address_is_refused() -> None:
    # "localhost" is allowlisted here, as a misconfigured allowlist or a DNS rebinding would make it.
    guard = ImageGuard(("localhost",), max_images=4, max_image_bytes=1024)
    with pytest.raises(GatewayError, match="private, loopback or link-local"):
        _check(guard, "http://localhost/a.png")
    metadata = ImageGuard(("169.254.169.254",), max_images=4, max_image_bytes=1024)
    with pytest.raises(GatewayError, match="private, loopback or link-local"):
        _check(metadata, "http://169.254.169.254/latest/meta-data/iam/security-credentials/")


def test_guard_through_the_gateway(fresh_upstream: FakeUpstream) -> None:
    settings = settings_for(fresh_upstream.url, image_domains=("localhost",), max_images=1)
    with running(settings) as gateway:
        client = gateway.client()
        client.chat.completions.create(model="m", messages=_image_message(PNG))  # type: ignore[arg-type]
        assert fresh_upstream.seen[-1].body["messages"][0]["content"][1]["image_url"]["url"] == PNG  # type: ignore[index]
        for messages in (
            _image_message(PNG, PNG),
            _image_message("http://169.254.169.254/latest/meta-data/"),
            _image_message("http://localhost:1/a.png"),
        ):
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
            assert caught.value.body["param"] == "messages"  # type: ignore[index]
    # None of the refused requests reached the engine.
    assert len([s for s in fresh_upstream.seen if s.path == "/v1/chat/completions"]) == 1
