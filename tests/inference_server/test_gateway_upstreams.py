"""The `external` and `sagemaker` adapters, and the SageMaker container contract (/ping, /invocations).

SageMaker runtime: moto answers InvokeEndpoint (through AWS_ENDPOINT_URL), but it does not implement
InvokeEndpointWithResponseStream, so the streaming tests use botocore's Stubber with a response body
that is a real AWS event stream (binary frames with CRCs, as AWS documents the
`application/vnd.amazon.eventstream` encoding), parsed by botocore's own EventStream parser.
"""

from __future__ import annotations

import asyncio
import binascii
import struct
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import httpx
import orjson
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from gateway_fake_upstream import FakeUpstream
from gateway_support import KEY, running, settings_for

from inference_server.upstreams import SageMakerUpstream, UpstreamError

# -- external: the provider key comes from Secrets Manager (moto) -----------------------------------


@pytest.mark.slow
def test_external_injects_the_provider_key_and_never_the_clients(
    moto_endpoint: str, fresh_upstream: FakeUpstream
) -> None:
    secrets = boto3.client("secretsmanager")
    name = f"provider-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString='{"api_key": "sk-provider-secret"}')
    settings = settings_for(fresh_upstream.url, upstream="external", provider_key_secret=name)
    with running(settings) as gateway:
        reply = gateway.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
    seen = fresh_upstream.seen[-1].headers
    assert seen["authorization"] == "Bearer sk-provider-secret"
    assert KEY not in str(seen)


# -- sagemaker: InvokeEndpoint against moto ----------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-sm",
    "object": "chat.completion",
    "created": 0,
    "model": "sm-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "from sagemaker"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@pytest.mark.slow
def test_sagemaker_invoke_endpoint_through_the_gateway(moto_endpoint: str) -> None:
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    httpx.post(
        moto_endpoint + "/moto-api/static/sagemaker/endpoint-results",
        json={
            "account_id": "123456789012",
            "region": "us-east-1",
            "results": [
                {
                    "Body": orjson.dumps(COMPLETION).decode(),
                    "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
            ],
        },
        timeout=10,
    ).raise_for_status()
    settings = settings_for("http://unused.invalid/v1", upstream="sagemaker", sagemaker_endpoint=endpoint)
    with running(settings) as gateway:
        reply = gateway.client().chat.completions.create(
            model="sm-model", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "from sagemaker"
        # moto knows no such endpoint, so DescribeEndpoint fails: not ready.
        assert httpx.get(gateway.url + "/ready", timeout=10).status_code == 503


# -- sagemaker: InvokeEndpointWithResponseStream with botocore's Stubber ------------------------------


def _header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded


def _frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event stream encoding: prelude, prelude CRC, headers, payload, CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def _payload_part(data: bytes) -> bytes:
    return _frame(
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"},
        data,
    )


def _model_stream_error(message: str) -> bytes:
    body = orjson.dumps({"Message": message, "ErrorCode": "ModelError"})
    return _frame(
        {
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        body,
    )


class _Raw:
    """The urllib3 response botocore reads an event stream from."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.closed = False

    def stream(self, amt: int = 1024) -> Iterator[bytes]:
        for frame in self.frames:
            # Split frames across reads, as the network does.
            yield frame[:7]
            yield frame[7:]

    def close(self) -> None:
        self.closed = True


def _stubbed(frames: list[bytes]) -> tuple[Any, list[dict[str, Any]], _Raw]:
    """A runtime client whose HTTP layer answers with `frames`, at botocore's `before-send` hook.

    Stubber validates a stubbed response against the output shape and rejects an EventStream body,
    so this stubs one level lower: botocore signs the request, then its own parser builds the
    EventStream from the raw bytes, exactly as for an AWS response.
    """
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )
    raw = _Raw(frames)
    sent: list[dict[str, Any]] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append({"url": request.url, "headers": dict(request.headers), "body": request.body})
        headers = {
            "Content-Type": "application/vnd.amazon.eventstream",
            "X-Amzn-SageMaker-Content-Type": "text/event-stream",
        }
        return AWSResponse(request.url, 200, headers, raw)

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpointWithResponseStream", answer)
    return client, sent, raw


async def _collect(upstream: SageMakerUpstream) -> list[bytes]:
    await upstream.start()
    try:
        reply = await upstream.send("POST", "/chat/completions", b'{"stream":true}', "rid-1", stream=True)
        chunks = []
        try:
            while chunk := await reply.next_chunk():
                chunks.append(chunk)
        finally:
            reply.close()
        return chunks
    finally:
        await upstream.close()


def test_sagemaker_stream_is_relayed_part_by_part() -> None:
    events = [
        b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[]}\n\n',
        b"data: [DONE]\n\n",
    ]
    client, sent, raw = _stubbed([_payload_part(e) for e in events])
    chunks = asyncio.run(_collect(SageMakerUpstream("ep", lambda: client)))
    assert chunks == events
    assert raw.closed
    # Signed with IAM (SigV4), and the OpenAI route rides in CustomAttributes.
    assert sent[0]["url"].endswith("/endpoints/ep/invocations-response-stream")
    headers = {k.lower(): v for k, v in sent[0]["headers"].items()}
    assert headers["authorization"].startswith(b"AWS4-HMAC-SHA256") or str(
        headers["authorization"]
    ).startswith("AWS4-HMAC-SHA256")
    attributes = headers["x-amzn-sagemaker-custom-attributes"]
    assert (attributes.decode() if isinstance(attributes, bytes) else attributes).startswith(
        "route=/chat/completions;"
    )


def test_sagemaker_model_stream_error_becomes_an_upstream_error() -> None:
    client, _, _ = _stubbed([_payload_part(b"data: {}\n\n"), _model_stream_error("CUDA out of memory")])
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(_collect(SageMakerUpstream("ep", lambda: client)))
    assert caught.value.kind == "model_stream_error"
    assert caught.value.message == "CUDA out of memory"


def test_sagemaker_model_error_passes_the_containers_status_through() -> None:
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )
    stubber = Stubber(client)
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error (400)",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": 400,
            "OriginalMessage": '{"object":"error","message":"bad","code":400}',
        },
    )
    stubber.activate()

    async def call() -> tuple[int, bytes]:
        upstream = SageMakerUpstream("ep", lambda: client)
        await upstream.start()
        reply = await upstream.send("POST", "/chat/completions", b"{}", "rid", stream=False)
        return reply.status, await reply.read()

    status, body = asyncio.run(call())
    assert status == 400
    assert orjson.loads(body)["message"] == "bad"


# -- the SageMaker container contract ---------------------------------------------------------------


def test_invocations_dispatch_by_custom_attributes_or_body(fresh_upstream: FakeUpstream) -> None:
    settings = settings_for(fresh_upstream.url, sagemaker_contract=True, api_keys=())
    with running(settings) as gateway, httpx.Client(timeout=10) as http:
        assert http.get(gateway.url + "/ping").status_code == 200
        # SageMaker strips Authorization and has authenticated the caller with IAM.
        chat = http.post(gateway.url + "/invocations", json={"model": "m", "messages": []})
        assert chat.json()["object"] == "chat.completion"
        embeddings = http.post(gateway.url + "/invocations", json={"model": "m", "input": ["x"]})
        assert embeddings.json()["data"][0]["object"] == "embedding"
        routed = http.post(
            gateway.url + "/invocations",
            json={"model": "m", "prompt": "p", "messages": []},
            headers={"X-Amzn-SageMaker-Custom-Attributes": "route=/completions;request-id=x"},
        )
        assert routed.json()["object"] == "text_completion"
        stream = http.post(gateway.url + "/invocations", json={"model": "m", "messages": [], "stream": True})
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.text.endswith("data: [DONE]\n\n")
        unknown = http.post(gateway.url + "/invocations", json={"model": "m"})
        assert unknown.status_code == 400
        # The OpenAI routes still demand a key even in SageMaker mode (none is configured here).
        assert http.get(gateway.url + "/v1/models").status_code == 401
    assert [s.path for s in fresh_upstream.seen[:3]] == [
        "/v1/models",
        "/v1/chat/completions",
        "/v1/embeddings",
    ]


# -- sagemaker: timeouts and readiness (issue 10, item 9) --------------------------------------------


def test_sagemaker_read_timeout_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_server.app import build_gateway

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    base = settings_for(
        "http://unused/v1", upstream="sagemaker", sagemaker_endpoint="ep", sagemaker_contract=True
    )
    # botocore's default read timeout is 60 s, InvokeEndpoint's model limit 60 s: AWS documents
    # 70 s for the SDK socket timeout.
    default = build_gateway(base).upstream._runtime_factory()  # type: ignore[attr-defined]
    assert default.meta.config.read_timeout == 70
    assert default.meta.config.retries["total_max_attempts"] == 1
    configured = build_gateway(replace(base, upstream_timeout=480)).upstream._runtime_factory()  # type: ignore[attr-defined]
    assert configured.meta.config.read_timeout == 480


def test_sagemaker_readiness_is_describe_endpoint_cached() -> None:
    # Stubber with DescribeEndpoint's documented response shape (moto's endpoints never leave
    # Creating without a model behind them).
    control = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(control)
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": "ep",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
            "EndpointConfigName": "cfg",
            "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
        },
        {"EndpointName": "ep"},
    )
    upstream = SageMakerUpstream("ep", object, lambda: control, ready_cache_seconds=30)

    async def scenario() -> list[bool]:
        await upstream.start()
        return [await upstream.ready() for _ in range(10)]

    with stubber:
        assert asyncio.run(scenario()) == [True] * 10
        stubber.assert_no_pending_responses()  # one DescribeEndpoint for ten checks
