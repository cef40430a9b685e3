"""The `ec2` user data, run with bash as cloud-init would, against stubs and a fake IMDS/AWS on 127.0.0.1.

The script is taken from the rendered template and its Fn::Sub resolved as CloudFormation would, with
the fake's address for ReadyUrl. docker, systemctl and sleep are stubs on PATH that log their calls;
python3 is the real one, running the real boot_aws.py the script writes out. The fake answers IMDSv2
(token, role credentials, instance id), ECR GetAuthorizationToken, Secrets Manager GetSecretValue and
CloudFormation SignalResource, and /ready, and can fail each a number of times.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.templates.conftest import Built

slow = pytest.mark.slow  # they start a server and run bash

STUB_DOCKER = """#!/bin/bash
echo "docker $*" >> "$STUB_LOG"
case "$1" in
  login) echo "login-password $(cat)" >> "$STUB_LOG" ;;
  pull) [ "${FAKE_PULL:-ok}" = ok ] || exit 1 ;;
  run) echo "run-env HF_TOKEN=${HF_TOKEN:-unset}" >> "$STUB_LOG" ;;
  inspect) echo "${FAKE_RESTARTS:-0}" ;;
esac
exit 0
"""
STUB_LOGGER = """#!/bin/bash
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""


@dataclass
class Fake:
    """What the fake AWS saw, and how many times each call fails before it answers."""

    unreachable: int = 0
    ecr_failures: int = 0
    not_ready: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str) -> int:
        return sum(1 for s in self.seen if s["kind"] == kind)


def serve(fake: Fake) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: str, kind: str, **extra: Any) -> None:
            with fake.lock:
                fake.seen.append(
                    {
                        "kind": kind,
                        "status": status,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        **extra,
                    }
                )
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            assert self.path == "/latest/api/token"
            assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
            self.answer(200, "imds-token", "imds-token")

        def do_GET(self) -> None:
            if self.path.startswith("/latest/"):
                if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
                    return self.answer(401, "", "imds-unauthorised")
                answers = {
                    "/latest/meta-data/iam/security-credentials/": "host-role",
                    "/latest/meta-data/iam/security-credentials/host-role": json.dumps(
                        {
                            "AccessKeyId": "ASIAFAKEHOST",
                            "SecretAccessKey": "fake-secret",
                            "Token": "fake-session",
                        }
                    ),
                    "/latest/meta-data/instance-id": "i-0123456789abcdef0",
                }
                return self.answer(200, answers[self.path], "imds")
            if self.path == "/ready":
                with fake.lock:
                    ready = fake.count("ready") >= fake.not_ready
                return self.answer(200 if ready else 503, "", "ready")
            with fake.lock:
                drop = fake.count("reachable-dropped") < fake.unreachable
                if drop:
                    fake.seen.append({"kind": "reachable-dropped"})
            if drop:
                self.close_connection = True  # no answer at all: as if the route did not exist yet
                return None
            return self.answer(404, "", "reachable")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            target = self.headers.get("X-Amz-Target", "")
            if target.endswith("GetAuthorizationToken"):
                with fake.lock:
                    failing = fake.count("ecr") < fake.ecr_failures
                token = base64.b64encode(b"AWS:the-ecr-password").decode()
                payload = {"authorizationData": [{"authorizationToken": token}]}
                return self.answer(500 if failing else 200, json.dumps(payload), "ecr")
            if target == "secretsmanager.GetSecretValue":
                assert json.loads(body) == {"SecretId": "hf/token"}
                return self.answer(200, json.dumps({"SecretString": "hf_fake_token"}), "secret")
            form = dict(urllib.parse.parse_qsl(body))
            assert form["Action"] == "SignalResource"
            return self.answer(200, "<SignalResourceResponse/>", "signal", form=form)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def resolve(item: Built, ready_url: str) -> str:
    """The user data as CloudFormation hands it to the instance: Fn::Sub resolved."""
    data = item.one("AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    text, variables = data
    values = {
        "AWS::Region": "us-east-1",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": item.deployment.stack_name,
        "LogGroup": "/deployctl/dev/test",
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/deployctl/vllm:abc123",
        "ReadyUrl": ready_url,
    }
    for name, value in variables.items():
        values.setdefault(name, value if isinstance(value, str) else f"<{name}>")

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        return "${" + name[1:] + "}" if name.startswith("!") else values[name]

    return re.sub(r"\$\{([^}]*)\}", sub, text)


@dataclass
class Run:
    code: int
    log: list[str]
    fake: Fake
    stderr: str

    def signals(self) -> list[str]:
        return [s["form"]["Status"] for s in self.fake.seen if s["kind"] == "signal"]


@pytest.fixture
def boot(tmp_path: Path, built: dict[str, Built]) -> Iterator[Any]:
    servers = []

    def run(stack: str, fake: Fake, **env: str) -> Run:
        server = serve(fake)
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stubs = tmp_path / "bin"
        stubs.mkdir(exist_ok=True)
        for name, text in {"docker": STUB_DOCKER, "systemctl": STUB_LOGGER, "sleep": STUB_LOGGER}.items():
            (stubs / name).write_text(text, encoding="utf-8")
            (stubs / name).chmod(0o755)
        script = tmp_path / "user-data.sh"
        script.write_text(resolve(built[stack], f"{url}/ready"), encoding="utf-8")
        log = tmp_path / "calls.log"
        log.write_text("", encoding="utf-8")
        python = shutil.which("python3")
        assert python, "the AMI's python3 stands in for the host's"
        done = subprocess.run(
            ["bash", str(script)],
            env={
                "PATH": f"{stubs}:{Path(python).parent}:/usr/bin:/bin",
                "STUB_LOG": str(log),
                "DEPLOYCTL_ROOT": str(tmp_path / "root"),
                "AWS_ENDPOINT_URL": url,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Run(done.returncode, log.read_text(encoding="utf-8").splitlines(), fake, done.stderr)

    yield run
    for server in servers:
        server.shutdown()
        server.server_close()


@slow
def test_waits_for_the_network_retries_and_signals_only_once_ready(boot: Any) -> None:
    fake = Fake(unreachable=2, ecr_failures=2, not_ready=3)
    run = boot("dev-ec2-open-http", fake)
    assert run.code == 0, run.stderr
    # No route for the first two tries: it waited (with backoff) instead of giving up.
    assert fake.count("reachable-dropped") == 2 and fake.count("reachable") == 1
    assert fake.count("ecr") == 3  # two 500s, then the token
    sleeps = [line.split()[1] for line in run.log if line.startswith("sleep ")]
    assert sleeps[:4] == ["2", "4", "2", "4"]  # backoff per step: reachability, then the ECR login
    assert "systemctl disable --now ecs" in run.log
    # dockerd is enabled for later boots before the container with --restart unless-stopped starts.
    started = run.log.index("systemctl enable --now docker")
    assert started < next(i for i, line in enumerate(run.log) if line.startswith("docker run "))
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert f"docker login --username AWS --password-stdin {registry}" in run.log
    assert "login-password the-ecr-password" in run.log
    assert "run-env HF_TOKEN=hf_fake_token" in run.log  # read at boot, never in the template
    (docker_run,) = [line for line in run.log if line.startswith("docker run ")]
    assert "--env HF_TOKEN " in docker_run and "--gpus all" in docker_run
    assert "--env GATEWAY_ALLOW_ANONYMOUS=true" in docker_run
    # SUCCESS once, after /ready answered 200, and never FAILURE.
    assert run.signals() == ["SUCCESS"]
    kinds = [s["kind"] for s in fake.seen]
    assert kinds.count("ready") == 4
    assert kinds.index("signal") > len(kinds) - 1 - kinds[::-1].index("ready")
    (signal,) = [s for s in fake.seen if s["kind"] == "signal"]
    assert signal["form"]["LogicalResourceId"] == "InstanceGroup"
    assert signal["form"]["StackName"] == "dev-ec2-open-http"
    assert signal["form"]["UniqueId"] == "i-0123456789abcdef0"
    # Signed with the instance role's credentials from IMDSv2, session token included.
    assert "Credential=ASIAFAKEHOST/" in signal["headers"]["authorization"]
    assert "/us-east-1/cloudformation/aws4_request" in signal["headers"]["authorization"]
    assert signal["headers"]["x-amz-security-token"] == "fake-session"


@slow
def test_a_step_that_gives_up_signals_failure_and_starts_nothing(boot: Any) -> None:
    fake = Fake()
    run = boot("dev-ec2-open-http", fake, FAKE_PULL="fail")
    assert run.code == 1
    assert run.signals() == ["FAILURE"]  # CloudFormation fails now, not after the hour's timeout
    assert sum(1 for line in run.log if line.startswith("docker pull ")) == 10
    assert not any(line.startswith("docker run ") for line in run.log)
    assert "deployctl boot failed: docker pull" in run.stderr


@slow
def test_a_container_that_keeps_exiting_fails_the_instance(boot: Any) -> None:
    fake = Fake(not_ready=1000)
    run = boot("dev-ec2-spot-schedules", fake, FAKE_RESTARTS="5")
    assert run.code == 1
    assert run.signals() == ["FAILURE"]
    assert "the container keeps exiting" in run.stderr
    assert not any(line.startswith("run-env HF_TOKEN=hf") for line in run.log)  # no token_secret here


def test_the_resolved_script_is_valid_bash(built: dict[str, Built], tmp_path: Path) -> None:
    for stack in ("dev-ec2-open-http", "dev-ec2-spot-schedules", "dev-mistral-7b"):
        script = tmp_path / f"{stack}.sh"
        script.write_text(resolve(built[stack], "http://127.0.0.1:8080/ready"), encoding="utf-8")
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
