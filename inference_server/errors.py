"""Every error leaves the gateway in the OpenAI shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from typing import Any

import orjson

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


class GatewayError(Exception):
    """An error the gateway answers itself, with its status and optional retry-after."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return error_body(self.status, self.message, code=self.code, param=self.param)


def error_body(status: int, message: str, *, code: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    )


def _clean_code(code: Any) -> str | None:
    # vLLM puts the HTTP status in `code` as a number; OpenAI's `code` is a string or null and the
    # SDKs switch on it, so a number there would be read as a code nobody documents.
    if isinstance(code, str) and code and not code.isdigit():
        return code
    return None


def normalise_upstream_error(status: int, raw: bytes) -> bytes:
    """The upstream's error body, reshaped into OpenAI's shape (vLLM has used two shapes)."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        data = None
    inner: dict[str, Any] | None = None
    if isinstance(data, dict):
        candidate = data.get("error")
        if isinstance(candidate, dict):
            inner = candidate
        elif "message" in data:
            # vLLM < 0.10: {"object": "error", "message", "type", "param", "code": 400}
            inner = data
        elif isinstance(candidate, str):
            inner = {"message": candidate}
        elif "detail" in data:
            # FastAPI's own validation errors
            inner = {"message": str(data["detail"])}
    if inner is None:
        text = raw.decode("utf-8", "replace").strip()[:500] if raw else ""
        inner = {"message": text or f"upstream answered {status}"}
    message = inner.get("message")
    upstream_type = inner.get("type")
    kind = upstream_type if isinstance(upstream_type, str) and "_" in upstream_type else error_type(status)
    param = inner.get("param")
    return orjson.dumps(
        {
            "error": {
                "message": str(message) if message is not None else f"upstream answered {status}",
                "type": kind,
                "param": param if isinstance(param, str) else None,
                "code": _clean_code(inner.get("code")),
            }
        }
    )


def sse_error_event(status: int, message: str, *, code: str | None = None) -> bytes:
    """An OpenAI error event, which the SDKs raise as an APIError, then the end of the stream."""
    return b"data: " + error_body(status, message, code=code) + b"\n\ndata: [DONE]\n\n"
