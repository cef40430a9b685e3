"""uvicorn's configuration for the gateway, shared by `__main__` and the tests.

uvicorn's httptools protocol has no limit on a request's header block (h11 has
h11_max_incomplete_event_size; httptools has nothing), so an unfinished 48 MiB header would be
buffered whole before the app could refuse it. The protocol below counts the bytes of a request's
head and answers 431 once they pass GATEWAY_MAX_HEADER_BYTES.
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_DEFAULT_LIMIT = 64 * 1024


class HeaderLimitedProtocol(HttpToolsProtocol):
    max_head_bytes = int(os.environ.get("GATEWAY_MAX_HEADER_BYTES") or _DEFAULT_LIMIT)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            body = b"request header fields too large\n"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(body), body)
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()


def protocol_class(limit: int) -> type[HeaderLimitedProtocol]:
    if limit == HeaderLimitedProtocol.max_head_bytes:
        return HeaderLimitedProtocol
    # A worker process rebuilds this class from GATEWAY_MAX_HEADER_BYTES; in one process a
    # subclass carries another limit (the tests run several gateways side by side).
    return type("HeaderLimitedProtocol", (HeaderLimitedProtocol,), {"max_head_bytes": limit})
