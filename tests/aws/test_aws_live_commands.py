"""smoke, rotate-keys, drift and changed: the commands the scheduled and merge workflows call.

smoke runs end to end: a stack in the AWS emulator whose outputs point at a real gateway (in this
process) in front of the fake upstream, its key in the emulator's Secrets Manager. Rotation and drift
detection are things moto cannot do (no rotation Lambda, no drift detection), so those AWS calls are
answered by botocore's Stubber with the responses the API reference documents.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from tests.inference_server.gateway_fake_upstream import FakeUpstream
from tests.inference_server.gateway_support import running, settings_for
from tooling import drift, keys
from tooling.cli import cli

pytestmark = pytest.mark.slow
SPEC = """\
name: chat
owner: team@example.com
region: us-east-1
model: {id: org/fake, served_name: fake-model, modalities: [text, image]}
engine: {type: vllm}
compute: {service: ecs-gpu, instance_type: g5.xlarge}
"""
OUTPUTS = {
    "Parameters": {"Url": {"Type": "String"}, "Secret": {"Type": "String"}},
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {"EndpointUrl": {"Value": {"Ref": "Url"}}, "ApiKeySecretArn": {"Value": {"Ref": "Secret"}}},
}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    with contextlib.suppress(RuntimeError):  # a test may have stopped it already
        fake.stop()


@pytest.fixture
def live(aws_env: str, upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """dev/chat deployed: a stack with outputs, a key in Secrets Manager, a gateway that checks it."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="deployctl/dev/chat/api-key", SecretString="k" * 48)["ARN"]
    settings = settings_for(upstream.url, api_keys=(), api_key_secret=arn, key_refresh_min_interval=0.05)
    with running(settings) as gateway:
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="dev-chat",
            TemplateBody=json.dumps(OUTPUTS),
            Parameters=[{"ParameterKey": "Url", "ParameterValue": gateway.url},
                        {"ParameterKey": "Secret", "ParameterValue": arn}],
        )  # fmt: skip
        (tmp_path / "deployments/dev").mkdir(parents=True)
        (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC, encoding="utf-8")
        yield tmp_path, gateway


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_smoke_passes_against_a_healthy_endpoint(live: tuple[Path, Any], tmp_path: Path) -> None:
    root, _ = live
    report = tmp_path / "smoke.json"
    code, out = run(root, "smoke", "dev/chat", "--key-from-secret", "--report", str(report))
    assert code == 0, out
    data = json.loads(report.read_text())
    (entry,) = data
    assert entry["ok"] is True
    checks = {c["name"]: c for c in entry["checks"]}
    assert set(checks) == {"health", "models", "chat", "stream", "unauthorised", "image"}
    assert checks["stream"]["first_token_seconds"] is not None
    assert entry["key_source"] == "Secrets Manager AWSCURRENT"
    assert "k" * 48 not in out + report.read_text()


def test_smoke_fails_when_the_endpoint_does(live: tuple[Path, Any], upstream: FakeUpstream) -> None:
    root, _ = live
    upstream.stop()  # the engine behind the gateway is gone
    code, out = run(
        root, "smoke", "--environment", "dev", "--key-from-secret", "--format", "markdown", "--retries", "0"
    )
    assert code == 1
    assert "| dev/chat | health | ✅" in out
    assert "| dev/chat | chat | ❌" in out


def test_smoke_with_a_key_from_the_environment(
    live: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = live
    monkeypatch.setenv("SMOKE_KEY", "wrong-key")
    code, out = run(root, "smoke", "dev/chat", "--key-env", "SMOKE_KEY", "--retries", "0")
    assert code == 1
    assert "AuthenticationError" in out


NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
V1, V2 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"


def test_rotation_waits_for_the_new_version(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr("tooling.aws.client", lambda service, region: client)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:deployctl/dev/chat/api-key-AbCdEf"
    with Stubber(client) as stub:
        stub.add_response("describe_secret", {"VersionIdsToStages": {V1: ["AWSCURRENT"]}}, {"SecretId": arn})
        stub.add_response("rotate_secret", {"ARN": arn, "VersionId": V2}, {"SecretId": arn})
        stub.add_response(
            "describe_secret",
            {"VersionIdsToStages": {V1: ["AWSCURRENT"], V2: ["AWSPENDING"]}},
            {"SecretId": arn},
        )
        stub.add_response(
            "describe_secret",
            {"VersionIdsToStages": {V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}},
            {"SecretId": arn},
        )
        rotation = keys.rotate(arn, "us-east-1", poll=0)
    assert (rotation.previous_version, rotation.current_version) == (V1, V2)


def test_keys_are_proven_against_the_endpoint(upstream: FakeUpstream) -> None:
    with running(
        settings_for(upstream.url, api_keys=("sk-new-" + "n" * 40, "sk-old-" + "o" * 40))
    ) as gateway:
        assert keys.works(gateway.url, "sk-new-" + "n" * 40)
        assert keys.works(gateway.url, "sk-old-" + "o" * 40)
        assert not keys.works(gateway.url, "sk-gone-" + "g" * 40)


def test_drift_reports_modified_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr("tooling.aws.client", lambda service, region: client)
    with Stubber(client) as stub:
        stub.add_response("detect_stack_drift", {"StackDriftDetectionId": "d1"}, {"StackName": "prod-x"})
        status = {"StackId": "s", "StackDriftDetectionId": "d1", "Timestamp": NOW}
        stub.add_response(
            "describe_stack_drift_detection_status",
            {**status, "DetectionStatus": "DETECTION_IN_PROGRESS"},
            {"StackDriftDetectionId": "d1"},
        )
        stub.add_response(
            "describe_stack_drift_detection_status",
            {**status, "DetectionStatus": "DETECTION_COMPLETE", "StackDriftStatus": "DRIFTED"},
            {"StackDriftDetectionId": "d1"},
        )
        stub.add_response(
            "describe_stack_resource_drifts",
            {"StackResourceDrifts": [{
                "StackId": "s", "LogicalResourceId": "LoadBalancerSecurityGroup",
                "ResourceType": "AWS::EC2::SecurityGroup", "StackResourceDriftStatus": "MODIFIED",
                "Timestamp": NOW,
                "PropertyDifferences": [{"PropertyPath": "/SecurityGroupIngress/2", "ExpectedValue": "",
                                         "ActualValue": "0.0.0.0/0", "DifferenceType": "ADD"}]}]},
            {"StackName": "prod-x", "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
        )  # fmt: skip
        result = drift.detect("prod-x", "us-east-1", poll=0)
    assert result.status == "DRIFTED"
    assert result.resources == [
        ("LoadBalancerSecurityGroup", "AWS::EC2::SecurityGroup", "MODIFIED", ["/SecurityGroupIngress/2"])
    ]
    assert "| prod-x | DRIFTED | LoadBalancerSecurityGroup |" in drift.to_markdown([result])


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@x", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def test_changed_names_deployments_removals_and_images(tmp_path: Path) -> None:
    root = Path(__file__).parents[2]
    import shutil

    for folder in ("deployments", "templates", "tooling", "inference_server"):
        shutil.copytree(root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    llama = tmp_path / "deployments/prod/llama-3-1-8b.yaml"
    llama.write_text(llama.read_text().replace("max: 4", "max: 5"), encoding="utf-8")
    (tmp_path / "deployments/dev/mistral-7b.yaml").unlink()
    code, out = run(tmp_path, "changed", "--since", "HEAD", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert [d["stack_name"] for d in data["deployments"]] == ["prod-llama-3-1-8b"]
    assert [d["stack_name"] for d in data["removed"]] == ["dev-mistral-7b"]
    assert data["environments"] == ["dev", "prod"]
    assert data["images"] == {"gateway": False, "vllm": False}
    app = tmp_path / "inference_server/app.py"
    app.write_text(app.read_text() + "\n# touched\n", encoding="utf-8")
    data = json.loads(run(tmp_path, "changed", "--since", "HEAD", "--format", "json")[1])
    assert data["images"] == {"gateway": True, "vllm": True}


PROD_SPEC = SPEC.replace("name: chat", "name: later")


def test_smoke_skips_what_is_not_deployed_and_tests_the_rest(live: tuple[Path, Any], tmp_path: Path) -> None:
    """dev/later is merged but has no stack yet: skipped, listed, and dev/chat after it still tested."""
    root, _ = live
    (root / "deployments/dev/aaa-later.yaml").write_text(SPEC.replace("name: chat", "name: aaa-later"))
    report = tmp_path / "smoke.json"
    code, out = run(
        root, "smoke", "--environment", "dev", "--key-from-secret", "--format", "markdown",
        "--report", str(report),
    )  # fmt: skip
    assert code == 0, out
    assert "| dev/aaa-later | | ⏭️ skipped |" in out
    assert "| dev/chat | chat | ✅" in out
    entries = {e["deployment"]: e for e in json.loads(report.read_text())}
    assert entries["dev/aaa-later"]["ok"] is None
    assert "not deployed" in entries["dev/aaa-later"]["skipped"]
    assert entries["dev/chat"]["ok"] is True
    assert "1 passed, 0 failed, 1 skipped" in out


def test_smoke_reports_a_stack_without_outputs_as_failed_and_goes_on(
    live: tuple[Path, Any], tmp_path: Path
) -> None:
    root, _ = live
    (root / "deployments/dev/aaa-broken.yaml").write_text(SPEC.replace("name: chat", "name: aaa-broken"))
    bare = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="dev-aaa-broken", TemplateBody=json.dumps(bare)
    )
    code, out = run(root, "smoke", "--environment", "dev", "--key-from-secret", "--format", "markdown")
    assert code == 1
    assert "| dev/aaa-broken | setup | ❌" in out
    assert "no EndpointUrl output" in out
    assert "| dev/chat | chat | ✅" in out  # the failure before it did not stop the run


def test_smoke_of_an_environment_with_nothing_deployed_passes(aws_env: str, tmp_path: Path) -> None:
    (tmp_path / "deployments/prod").mkdir(parents=True)
    (tmp_path / "deployments/prod/chat.yaml").write_text(SPEC, encoding="utf-8")
    code, out = run(tmp_path, "smoke", "--environment", "prod", "--key-from-secret")
    assert code == 0, out
    assert "0 passed, 0 failed, 1 skipped" in out


def describe(created: datetime.datetime, rotated: datetime.datetime | None = None, **extra: Any) -> dict:
    answer: dict[str, Any] = {"ARN": "arn", "CreatedDate": created, "LastChangedDate": NOW, **extra}
    if rotated is not None:
        answer["LastRotatedDate"] = rotated
    answer.setdefault("VersionIdsToStages", {V1: ["AWSCURRENT"]})
    return answer


def test_key_age_from_the_last_rotation_else_the_creation() -> None:
    day = datetime.timedelta(days=1)
    # Rotated 29 days ago with a 30-day period: not due; LastChangedDate (a tag edit today) is ignored.
    age = keys.key_age(describe(NOW - 90 * day, NOW - 29 * day), 30)
    assert (age.source, age.due(NOW)) == ("LastRotatedDate", False)
    assert age.due(NOW + day)
    # Never rotated: as old as the secret.
    age = keys.key_age(describe(NOW - 31 * day), 30)
    assert (age.source, age.due(NOW)) == ("CreatedDate", True)
    assert age.due_at == NOW - day
    # A version still AWSPENDING: a rotation under way or stuck.
    pending = describe(NOW - 90 * day, VersionIdsToStages={V1: ["AWSCURRENT"], V2: ["AWSPENDING"]})
    assert keys.key_age(pending, 30).rotating


@pytest.fixture
def rotatable(aws_env: str, tmp_path: Path) -> tuple[Path, str]:
    """dev/chat deployed (stack outputs and a secret in the emulator), auth.rotation_days 7."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="deployctl/dev/chat/api-key", SecretString="k" * 48)["ARN"]
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="dev-chat",
        TemplateBody=json.dumps(OUTPUTS),
        Parameters=[{"ParameterKey": "Url", "ParameterValue": "https://chat.example.com"},
                    {"ParameterKey": "Secret", "ParameterValue": arn}],
    )  # fmt: skip
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC + "auth: {rotation_days: 7}\n")
    (tmp_path / "deployments/dev/later.yaml").write_text(PROD_SPEC)  # merged, never deployed
    return tmp_path, arn


def test_rotate_due_leaves_a_fresh_key_alone(rotatable: tuple[Path, str], monkeypatch) -> None:
    root, _ = rotatable

    def no_rotation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a key that is not due was rotated")

    monkeypatch.setattr(keys, "rotate", no_rotation)
    code, out = run(root, "rotate-keys", "--environment", "dev", "--due")
    assert code == 0, out
    assert "dev-chat: not due (key from" in out
    assert "after 7d" in out
    assert "dev-later: skipped, not deployed yet" in out


def test_rotate_due_rotates_an_old_key(rotatable: tuple[Path, str], monkeypatch) -> None:
    root, arn = rotatable
    eight_days_on = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=8)

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime.datetime:
            return eight_days_on

    rotated: list[str] = []
    monkeypatch.setattr(datetime, "datetime", Later)

    def rotate(secret: str, region: str, timeout: float) -> keys.Rotation:
        rotated.append(secret)
        return keys.Rotation(secret, V1, V2)

    monkeypatch.setattr(keys, "rotate", rotate)
    # The rotation itself (the stack's function) and the keys' proof are tested above.
    monkeypatch.setattr(keys, "key", lambda secret, region, stage="AWSCURRENT": stage)
    monkeypatch.setattr(keys, "works", lambda url, key: True)
    code, out = run(root, "rotate-keys", "--environment", "dev", "--due")
    assert code == 0, out
    assert rotated == [arn]
    assert "dev-chat: rotated to version" in out


def drift_of(status: str) -> drift.Drift:
    return drift.Drift("dev-x", status)


def test_drift_exit_codes() -> None:
    assert drift.exit_code([]) == 0
    assert drift.exit_code([drift_of("IN_SYNC")]) == 0
    assert drift.exit_code([drift_of("IN_SYNC"), drift_of("DRIFTED")]) == 2
    # An incomplete report cannot claim either answer: failure wins over drift.
    assert drift.exit_code([drift_of("DRIFTED"), drift_of("FAILED: drift detection timed out")]) == 1
    assert drift.exit_code([drift_of("UNKNOWN")]) == 1
    assert drift.exit_code([drift_of("NOT_CHECKED")]) == 1


def test_drift_command_exits_2_when_a_stack_drifted(aws_env: str, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "deployments/dev").mkdir(parents=True)
    (tmp_path / "deployments/dev/chat.yaml").write_text(SPEC, encoding="utf-8")
    stack = {"StackName": "dev-chat", "Tags": [{"Key": "deployctl:environment", "Value": "dev"}]}
    monkeypatch.setattr("tooling.changesets.managed_stacks", lambda region: [stack])
    monkeypatch.setattr(drift, "detect", lambda name, region: drift.Drift(name, "DRIFTED"))
    code, out = run(tmp_path, "drift", "--environment", "dev", "--format", "markdown")
    assert code == 2, out
    assert "| dev-chat | DRIFTED |" in out
    monkeypatch.setattr(drift, "detect", lambda name, region: drift.Drift(name, "IN_SYNC"))
    code, out = run(tmp_path, "drift", "--environment", "dev")
    assert code == 0, out
