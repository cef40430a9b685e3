"""`deployctl smoke` of an internal endpoint: check_deployment hands the checks to the stack's probe.

The stack (outputs only) and its key live in the AWS emulator; the endpoint is a real gateway on
127.0.0.1 in front of the fake engine. moto's Lambda Invoke runs functions in Docker, which these tests
do not have, so the Lambda API is botocore's Stubber on the very client check_deployment uses
(tooling.aws.single_attempt_client), answering as the Invoke API reference documents
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): the stubbed answer's Payload runs
templates/runtime/smoke_probe.py's handler on the payload the CLI sent, as Lambda would.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner

from templates import smoke_probe as template
from templates.runtime import smoke_probe
from tests.inference_server.gateway_fake_upstream import FakeUpstream
from tests.inference_server.gateway_support import running, settings_for
from tooling import aws, repository, smoke
from tooling.cli import cli

pytestmark = pytest.mark.slow
FUNCTION = "dev-chat-SmokeProbeFunction-a1B2c3D4e5F6"
KEY = "k" * 48
SPEC = """\
name: chat
owner: team@example.com
region: us-east-1
model: {id: org/fake, served_name: fake-model, modalities: [text, image]}
engine: {type: vllm}
compute: {service: ecs-gpu, instance_type: g5.xlarge}
"""
OUTPUTS = {
    "Parameters": {n: {"Type": "String"} for n in ("Url", "Secret", "Probe")},
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "EndpointUrl": {"Value": {"Ref": "Url"}},
        "ApiKeySecretArn": {"Value": {"Ref": "Secret"}},
        template.OUTPUT: {"Value": {"Ref": "Probe"}},
    },
}


class Lambda:
    """What the Invoke API does with a payload: run the probe's handler on it (see the docstring).

    As a Stubber parameter it records the payload the CLI sent (`==`); as the answer's Payload it reads
    back the handler's report, or a runtime error as Lambda reports an unhandled exception.
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __eq__(self, payload: object) -> bool:
        self.sent.append(json.loads(payload))  # type: ignore[arg-type]
        return True

    __hash__ = None  # type: ignore[assignment]

    def read(self) -> bytes:
        report = smoke_probe.handler(
            self.sent[-1], SimpleNamespace(get_remaining_time_in_millis=lambda: 900_000)
        )
        return json.dumps(report).encode()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    with contextlib.suppress(RuntimeError):
        fake.stop()


@pytest.fixture
def internal(aws_env: str, upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """dev/chat deployed with an internal load balancer: its outputs name a probe function."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="deployctl/dev/chat/api-key", SecretString=KEY)["ARN"]
    settings = settings_for(upstream.url, api_keys=(), api_key_secret=arn, key_refresh_min_interval=0.05)
    with running(settings) as gateway:
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="dev-chat",
            TemplateBody=json.dumps(OUTPUTS),
            Parameters=[{"ParameterKey": "Url", "ParameterValue": gateway.url},
                        {"ParameterKey": "Secret", "ParameterValue": arn},
                        {"ParameterKey": "Probe", "ParameterValue": FUNCTION}],
        )  # fmt: skip
        (tmp_path / "deployments/dev").mkdir(parents=True)
        (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC, encoding="utf-8")
        yield tmp_path, gateway


def deployment(root: Path) -> Any:
    (found,) = repository.load(root).valid
    return found


def probe_client() -> Any:
    return aws.single_attempt_client("lambda", "us-east-1", read_timeout=smoke.INVOKE_READ_TIMEOUT_SECONDS)


def invoke_params() -> dict[str, Any]:
    return {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY}


def test_an_internal_endpoint_is_checked_by_its_probe_with_the_same_checks(
    internal: tuple[Path, Any],
) -> None:
    root, gateway = internal
    relay = Lambda()
    with Stubber(probe_client()) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "Payload": relay}, {**invoke_params(), "Payload": relay}
        )
        probed = smoke.check_deployment(deployment(root), key_mode="secret")
        stub.assert_no_pending_responses()
    # The key travelled in the payload (read from Secrets Manager by the CLI), never back in the report.
    (sent,) = relay.sent
    assert sent == {
        "deployment": "dev/chat",
        "url": gateway.url,
        "model": "fake-model",
        "key": KEY,
        "key_source": "Secrets Manager AWSCURRENT",
        "images": True,
        "retries": 1,
    }
    assert probed.ran_from == FUNCTION
    assert probed.ok, probed.checks
    assert KEY not in json.dumps(probed.to_json())
    # Parity: the same checks in this process (--url: this process reaches the endpoint) agree.
    here = smoke.check_deployment(deployment(root), key_mode="secret", url=gateway.url)
    assert here.ran_from == "here"

    def shape(report: smoke.Report) -> list[tuple[Any, ...]]:
        return [(c.name, c.ok, c.detail, c.first_token_seconds is None) for c in report.checks]

    assert shape(probed) == shape(here)
    assert [c.name for c in here.checks] == ["health", "models", "chat", "stream", "unauthorised", "image"]
    assert {k: v for k, v in probed.to_json().items() if k not in ("checks", "ran_from")} == {
        k: v for k, v in here.to_json().items() if k not in ("checks", "ran_from")
    }


def test_the_probe_client_never_retries_and_outwaits_the_function() -> None:
    config = probe_client().meta.config
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert config.read_timeout > template.PROBE_TIMEOUT_SECONDS


def test_a_failed_check_in_the_probe_fails_the_report(
    internal: tuple[Path, Any], upstream: FakeUpstream
) -> None:
    root, _ = internal
    upstream.stop()
    relay = Lambda()
    with Stubber(probe_client()) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "Payload": relay}, {**invoke_params(), "Payload": relay}
        )
        report = smoke.check_deployment(deployment(root), key_mode="secret", retries=0)
    checks = {c.name: c for c in report.checks}
    assert checks["health"].ok and not checks["chat"].ok
    assert not report.ok


def test_a_probe_that_crashes_is_one_failed_check_without_its_trace(internal: tuple[Path, Any]) -> None:
    root, _ = internal
    error = {"errorMessage": "Task timed out after 900.00 seconds", "errorType": "Sandbox.Timedout",
             "stackTrace": ['File "/var/task/index.py", line 1, in handler']}  # fmt: skip
    with Stubber(probe_client()) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _body(error)},
            invoke_params(),
        )
        report = smoke.check_deployment(deployment(root), key_mode="secret")
    assert [(c.name, c.ok, c.detail) for c in report.checks] == [
        ("probe", False, "Sandbox.Timedout: Task timed out after 900.00 seconds")
    ]
    assert "index.py" not in json.dumps(report.to_json())


def test_an_inactive_probe_is_invoked_again_once_lambda_has_its_network_back(
    internal: tuple[Path, Any],
) -> None:
    """Lambda reclaims the interfaces of a VPC function idle for weeks: that Invoke fails without
    running it (ResourceNotReadyException), and the next one after the function is Active runs it once."""
    root, _ = internal
    relay = Lambda()
    with Stubber(probe_client()) as stub:
        stub.add_client_error(
            "invoke",
            "ResourceNotReadyException",
            "The function is inactive and its VPC connection is no longer available.",
            502,
            expected_params=invoke_params(),
        )
        stub.add_response("get_function", {"Configuration": {"State": "Pending"}}, {"FunctionName": FUNCTION})
        stub.add_response("get_function", {"Configuration": {"State": "Active"}}, {"FunctionName": FUNCTION})
        stub.add_response(
            "invoke", {"StatusCode": 200, "Payload": relay}, {**invoke_params(), "Payload": relay}
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("time.sleep", lambda seconds: None)  # the waiter's 10 s delay
            report = smoke.check_deployment(deployment(root), key_mode="secret")
        stub.assert_no_pending_responses()
    assert report.ok and len(relay.sent) == 1


def test_a_public_endpoint_is_checked_from_here(internal: tuple[Path, Any]) -> None:
    root, gateway = internal
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    cfn.delete_stack(StackName="dev-chat")
    public = {**OUTPUTS, "Outputs": {k: v for k, v in OUTPUTS["Outputs"].items() if k != template.OUTPUT}}
    secret = boto3.client("secretsmanager", region_name="us-east-1").describe_secret(
        SecretId="deployctl/dev/chat/api-key"
    )["ARN"]
    cfn.create_stack(
        StackName="dev-chat",
        TemplateBody=json.dumps(public),
        Parameters=[{"ParameterKey": "Url", "ParameterValue": gateway.url},
                    {"ParameterKey": "Secret", "ParameterValue": secret},
                    {"ParameterKey": "Probe", "ParameterValue": "unused"}],
    )  # fmt: skip
    with Stubber(probe_client()) as stub:  # no responses: any Lambda call would fail the test
        report = smoke.check_deployment(deployment(root), key_mode="secret")
        stub.assert_no_pending_responses()
    assert report.ok and report.ran_from == "here"


def test_deployctl_smoke_reports_where_the_checks_ran(internal: tuple[Path, Any], tmp_path: Path) -> None:
    root, _ = internal
    relay = Lambda()
    out = tmp_path / "smoke.json"
    with Stubber(probe_client()) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "Payload": relay}, {**invoke_params(), "Payload": relay}
        )
        result = CliRunner().invoke(
            cli, ["--root", str(root), "smoke", "dev/chat", "--key-from-secret", "--report", str(out)],
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(out.read_text())
    assert entry["ok"] is True and entry["ran_from"] == FUNCTION
    assert KEY not in result.output + out.read_text()


def _body(document: dict[str, Any]) -> Any:
    import io

    from botocore.response import StreamingBody

    data = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(data), len(data))
