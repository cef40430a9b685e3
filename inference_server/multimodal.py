"""The media guard: what a request may ask the engine to fetch or decode.

Images, audio and video come as `data:` URLs or from allowlisted domains only. A remote URL must
resolve only to public addresses: otherwise a client could make the engine fetch the task's metadata endpoint
(169.254.169.254) or a private service. Size and count are bounded so a request cannot exhaust the
engine's memory. The gateway itself writes no temporary file: data: images stay in the request body
in memory (bounded by the body limit) and remote ones are fetched by the engine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from inference_server.errors import GatewayError

# What vLLM fetches or decodes from a content part (entrypoints/chat_utils.py, MM_PARSER_MAP and
# `_parse_chat_message_content_mm_part`): with a `type` it dispatches on it, without one (or with a
# `uuid`) on whichever of these keys the part carries. So the guard looks at the keys, whatever the
# type says: a part is checked for every media key it holds.
_URL_KEYS = ("image_url", "audio_url", "video_url")
# Serialized tensors the engine would deserialize; never accepted from clients.
_EMBEDS_KEYS = ("image_embeds", "audio_embeds", "video_embeds", "prompt_embeds")


def _parts(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every content part of a chat request's messages or a Responses request's input items."""
    for field in ("messages", "input"):
        items = body.get(field)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            content = item.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict):
                        yield part
            elif field == "input" and item.get("type") in {"input_image", "input_audio", "input_file"}:
                yield item


def _every_dict(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every object anywhere in the body: /score, /rerank and /embeddings take content parts in
    several places (data_1/data_2, documents, input), and vLLM accepts media in each."""
    if depth > 32:
        raise GatewayError(400, "the request body is nested too deeply", param=None)
    if isinstance(value, dict):
        yield value
        for item in value.values():
            if isinstance(item, dict | list):
                yield from _every_dict(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                yield from _every_dict(item, depth + 1)


def _has_parts(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                return True
    return isinstance(body.get("input"), list)


def _media(body: dict[str, Any], deep: bool = False) -> Iterator[tuple[str, Any]]:
    """(kind, value) for each media reference: kind is a URL key, "input_audio" or an embeds key."""
    for part in _every_dict(body) if deep else _parts(body):
        for key in _URL_KEYS:
            if key in part:
                value = part[key]
                yield key, value.get("url") if isinstance(value, dict) else value
        if part.get("input_audio") is not None:
            yield "input_audio", part["input_audio"]
        for key in _EMBEDS_KEYS:
            if part.get(key) is not None or (key == "prompt_embeds" and part.get("type") == key):
                yield key, None
        if part.get("type") == "input_file" and isinstance(part.get("file_url"), str):
            yield "file_url", part["file_url"]


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global excludes private, loopback, link-local (169.254.0.0/16, fe80::/10), shared and reserved.
    return ip.is_global and not ip.is_multicast


def _data_url_size(url: str, kind: str) -> int:
    header, sep, payload = url.partition(",")
    media = header[5:].split(";", 1)[0].strip().lower()
    wanted = {"image_url": "image/", "audio_url": "audio/", "video_url": "video/"}.get(kind)
    if not sep or (wanted is not None and not media.startswith(wanted)):
        raise GatewayError(
            400, f"a data: URL here must be data:{wanted or 'type/subtype'}...;base64,...", param="messages"
        )
    if header.lower().endswith(";base64"):
        return len(payload) * 3 // 4
    return len(payload)


class ImageGuard:
    """The media guard (images, audio, video): the name is kept from when it knew only images."""

    def __init__(self, allowed_domains: tuple[str, ...], max_images: int, max_image_bytes: int) -> None:
        self._domains = tuple(d.lower().lstrip(".") for d in allowed_domains)
        self._max_images = max_images
        self._max_bytes = max_image_bytes

    def _allowed_host(self, host: str) -> bool:
        return any(host == d or host.endswith("." + d) for d in self._domains)

    async def check(self, body: dict[str, Any], *, deep: bool = False) -> None:
        """`deep` looks at every object of the body, not only messages' and input's content parts."""
        if not deep and not _has_parts(body):
            return  # text-only messages: the hot path pays one pass over them
        count = 0
        for kind, value in _media(body, deep):
            if kind in _EMBEDS_KEYS:
                raise GatewayError(400, f"{kind} content parts are not accepted", param="messages")
            count += 1
            if count > self._max_images:
                raise GatewayError(
                    400, f"at most {self._max_images} images or other media per request", param="messages"
                )
            if kind == "input_audio":
                data = value.get("data") if isinstance(value, dict) else None
                if not isinstance(data, str):
                    raise GatewayError(400, "input_audio needs base64 data", param="messages")
                if len(data) * 3 // 4 > self._max_bytes:
                    raise GatewayError(
                        400, f"an audio input is larger than {self._max_bytes} bytes", param="messages"
                    )
                continue
            if not isinstance(value, str):
                raise GatewayError(400, f"a {kind} part needs a url", param="messages")
            if value[:5].lower() == "data:":
                if _data_url_size(value, kind) > self._max_bytes:
                    raise GatewayError(
                        400, f"an image is larger than {self._max_bytes} bytes", param="messages"
                    )
                continue
            await self._check_remote(value)

    async def _check_remote(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            raise GatewayError(400, "the media URL is malformed", param="messages") from None
        if parts.scheme not in {"https", "http"} or not host:
            raise GatewayError(400, "media must be data: URLs or http(s) URLs", param="messages")
        if not self._allowed_host(host):
            raise GatewayError(400, "media from this domain are not allowed", param="messages")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise GatewayError(400, "the media URL's host does not resolve", param="messages") from exc
        if not infos or not all(is_public_address(str(info[4][0])) for info in infos):
            raise GatewayError(
                400, "the media URL resolves to a private, loopback or link-local address", param="messages"
            )
