"""The media guard reads a request as vLLM's chat_utils does, so no media part reaches the engine unchecked.

vLLM (entrypoints/chat_utils.py, `_parse_chat_message_content_mm_part`) dispatches on `type` through
MM_PARSER_MAP and, for a part with no `type`, on whichever of image_url / audio_url / video_url /
input_audio / image_embeds / audio_embeds it carries; the Responses API's `input_image` carries a plain
string URL. Each of those fetches or decodes media, so each is checked. The engine is also started
with vLLM's own allowlist (`--allowed-media-domains`) and without redirects
(`VLLM_MEDIA_URL_ALLOW_REDIRECTS=0`), both in vLLM since v0.11.0 (docs/usage/security.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, running, settings_for

from inference_server.supervisor import engine_command, engine_environment

METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"

BYPASSES: list[tuple[str, bytes]] = [
    # No literal "image" anywhere in the body: a byte search for it skipped the guard.
    ("escaped key", b'{"type": "\\u0069mage_url", "\\u0069mage_url": {"url": "%s"}}'),
    ("no type", b'{"image_url": {"url": "%s"}}'),
    ("no type, string url", b'{"image_url": "%s"}'),
    ("video_url", b'{"type": "video_url", "video_url": {"url": "%s"}}'),
    ("audio_url", b'{"type": "audio_url", "audio_url": {"url": "%s"}}'),
    ("audio_url no type", b'{"audio_url": {"url": "%s"}}'),
    ("video_url no type", b'{"video_url": "%s"}'),
    ("input_image", b'{"type": "input_image", "image_url": "%s"}'),
    ("uuid with a type", b'{"type": "text", "uuid": "u1", "image_url": {"url": "%s"}}'),
]


def _chat(parts: bytes) -> bytes:
    return b'{"model": "m", "messages": [{"role": "user", "content": [%s]}]}' % parts


@pytest.mark.parametrize(("name", "part"), BYPASSES, ids=[b[0] for b in BYPASSES])
def test_every_media_part_is_checked(fresh_upstream: FakeUpstream, name: str, part: bytes) -> None:
    with running(settings_for(fresh_upstream.url)) as gateway:
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            content=_chat(part % METADATA.encode()),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            timeout=10,
        )
    assert response.status_code == 400, (name, response.text)
    assert not [s for s in fresh_upstream.seen if s.path == "/v1/chat/completions"]


def test_responses_api_input_images_are_checked(fresh_upstream: FakeUpstream) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": METADATA}]}],
    }
    with running(settings_for(fresh_upstream.url)) as gateway:
        response = httpx.post(
            gateway.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/score",
            {
                "model": "m",
                "data_1": "q",
                "data_2": {"content": [{"type": "image_url", "image_url": {"url": METADATA}}]},
            },
        ),
        (
            "/v1/rerank",
            {"model": "m", "query": "q", "documents": {"content": [{"image_url": {"url": METADATA}}]}},
        ),
        (
            "/v1/embeddings",
            {"model": "m", "messages": [{"role": "user", "content": [{"video_url": {"url": METADATA}}]}]},
        ),
    ],
)
def test_pooling_routes_are_checked_too(
    fresh_upstream: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    with running(settings_for(fresh_upstream.url)) as gateway:
        response = httpx.post(
            gateway.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        )
    assert response.status_code == 400, response.text
    assert not [s for s in fresh_upstream.seen if s.path == path]


def test_embeds_parts_are_refused(fresh_upstream: FakeUpstream) -> None:
    # image_embeds / audio_embeds are serialized tensors the engine deserializes: never from clients.
    with running(settings_for(fresh_upstream.url)) as gateway:
        for part in (b'{"type": "image_embeds", "image_embeds": "AAAA"}', b'{"audio_embeds": "AAAA"}'):
            response = httpx.post(
                gateway.url + "/v1/chat/completions",
                content=_chat(part),
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                timeout=10,
            )
            assert response.status_code == 400, response.text


def test_input_audio_is_bounded(fresh_upstream: FakeUpstream) -> None:
    with running(settings_for(fresh_upstream.url, max_image_bytes=1024)) as gateway:
        ok = b'{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}'
        big = b'{"input_audio": {"data": "%s", "format": "wav"}}' % (b"A" * 8000)
        statuses = []
        for part in (ok, big):
            statuses.append(
                httpx.post(
                    gateway.url + "/v1/chat/completions",
                    content=_chat(part),
                    headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                    timeout=10,
                ).status_code
            )
    assert statuses == [200, 400]


def test_the_engine_gets_vllms_own_allowlist_and_no_redirects() -> None:
    env = {"ENGINE_MODEL": "org/model", "GATEWAY_IMAGE_DOMAINS": "images.example.com,cdn.example.org"}
    argv = engine_command([], env)
    at = argv.index("--allowed-media-domains")
    assert argv[at + 1 : at + 3] == ["images.example.com", "cdn.example.org"]
    assert engine_environment(env)["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"
    # No domains: the gateway refuses every remote URL, and vLLM gets an allowlist nothing can match
    # (an empty list would mean "any domain" to vLLM).
    closed = engine_command([], {"ENGINE_MODEL": "org/model"})
    at = closed.index("--allowed-media-domains")
    assert closed[at + 1].endswith(".invalid")


def test_the_pinned_vllm_offers_those_options() -> None:
    # Every vLLM a deployment may run (engine.version) is a version of tooling/data/vllm_images.yaml.
    data = (Path(__file__).parents[2] / "tooling/data/vllm_images.yaml").read_text()
    versions = re.findall(r'^\s*"(\d+)\.(\d+)\.(\d+)":', data, re.MULTILINE)
    assert versions
    assert all(tuple(int(v) for v in version) >= (0, 11, 0) for version in versions)
