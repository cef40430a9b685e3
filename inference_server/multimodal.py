"""The image guard: what a request may ask the engine to fetch or decode.

Images come as `data:` URLs or from allowlisted domains only. A remote URL must resolve only to
public addresses: otherwise a client could make the engine fetch the task's metadata endpoint
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

_IMAGE_PART_TYPES = {"image_url", "input_image"}


def _image_urls(body: dict[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in _IMAGE_PART_TYPES:
                continue
            value = part.get("image_url")
            url = value.get("url") if isinstance(value, dict) else value
            if not isinstance(url, str):
                raise GatewayError(400, "an image part needs an image_url with a url", param="messages")
            yield url


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global excludes private, loopback, link-local (169.254.0.0/16, fe80::/10), shared and reserved.
    return ip.is_global and not ip.is_multicast


def _data_url_size(url: str) -> int:
    header, sep, payload = url.partition(",")
    if not sep or not header[5:].startswith("image/"):
        raise GatewayError(400, "a data: URL image must be data:image/<type>;base64,...", param="messages")
    if header.endswith(";base64"):
        return len(payload) * 3 // 4
    return len(payload)


class ImageGuard:
    def __init__(self, allowed_domains: tuple[str, ...], max_images: int, max_image_bytes: int) -> None:
        self._domains = tuple(d.lower().lstrip(".") for d in allowed_domains)
        self._max_images = max_images
        self._max_bytes = max_image_bytes

    def _allowed_host(self, host: str) -> bool:
        return any(host == d or host.endswith("." + d) for d in self._domains)

    async def check(self, body: dict[str, Any]) -> None:
        count = 0
        for url in _image_urls(body):
            count += 1
            if count > self._max_images:
                raise GatewayError(400, f"at most {self._max_images} images per request", param="messages")
            if url[:5].lower() == "data:":
                if _data_url_size(url) > self._max_bytes:
                    raise GatewayError(
                        400, f"an image is larger than {self._max_bytes} bytes", param="messages"
                    )
                continue
            await self._check_remote(url)

    async def _check_remote(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in {"https", "http"} or not host:
            raise GatewayError(400, "images must be data: URLs or http(s) URLs", param="messages")
        if not self._allowed_host(host):
            raise GatewayError(400, "images from this domain are not allowed", param="messages")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise GatewayError(400, "the image URL's host does not resolve", param="messages") from exc
        if not infos or not all(is_public_address(str(info[4][0])) for info in infos):
            raise GatewayError(
                400, "the image URL resolves to a private, loopback or link-local address", param="messages"
            )
