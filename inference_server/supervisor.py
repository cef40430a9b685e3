"""Entrypoint of the vLLM image: vLLM on 127.0.0.1, the gateway on 8080, one lifetime for both.

vLLM's own server has no auth on /invocations, so it listens on loopback only and the gateway is the
one door in. SageMaker starts the container as `<image> serve`: that turns on the SageMaker
contract (/ping, IAM-authenticated /invocations). On SIGTERM the gateway drains first, while the
engine still answers the streams it is finishing, then the engine stops. If either process dies the
other is stopped and the container exits with the dead one's status, so the orchestrator replaces
the task instead of leaving half of it running.

The gateway starts only once the engine answers: until the model is loaded, the load balancer's and
SageMaker's health checks fail and no request is routed to a task that cannot serve it.

Environment (the deployment's stack sets these; SageMaker allows no command override, so the model is
described by variables, not arguments): ENGINE_MODEL, ENGINE_SERVED_MODEL_NAME, ENGINE_ARGS (a JSON
object of vLLM flags: `{"max_model_len": 8192, "enable_prefix_caching": true}`), ENGINE_PORT (8000;
not VLLM_PORT, which vLLM itself reads for its distributed backend), HF_TOKEN_SECRET (a Secrets
Manager secret read at start into HF_TOKEN, for the engine only), GATEWAY_PORT (8080), ENGINE_COMMAND
(replaces `vllm serve`; `{host}` and `{port}` are filled in: the tests use a fake engine),
SUPERVISOR_GRACE (seconds each child gets to stop, default 60), ENGINE_START_TIMEOUT (seconds the
engine may take to load, default 3600).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from types import FrameType

ENGINE_HOST = "127.0.0.1"


def flags(values: Mapping[str, object]) -> list[str]:
    """vLLM flags from ENGINE_ARGS: `true` is `--flag`, `false` is `--no-flag`, others `--flag value`."""
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def engine_command(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    port = env.get("ENGINE_PORT", "8000")
    from_env: list[str] = []
    if env.get("ENGINE_SERVED_MODEL_NAME"):
        from_env += ["--served-model-name", env["ENGINE_SERVED_MODEL_NAME"]]
    from_env += flags(json.loads(env.get("ENGINE_ARGS") or "{}"))
    template = env.get("ENGINE_COMMAND")
    if template:
        head = [part.format(host=ENGINE_HOST, port=port) for part in shlex.split(template)]
        return head + from_env + list(args)
    model = (
        []
        if args and not args[0].startswith("-")
        else [env["ENGINE_MODEL"]]
        if env.get("ENGINE_MODEL")
        else []
    )
    # Host, port and the media allowlist come last so that nothing in the arguments can undo them.
    return [
        "vllm", "serve", *model, *from_env, *args, *media_flags(env), "--host", ENGINE_HOST, "--port", port,
    ]  # fmt: skip


# A host name under the reserved .invalid TLD (RFC 2606) never resolves: the allowlist that admits no
# fetch, since an empty --allowed-media-domains means "any domain" to vLLM.
_NO_MEDIA_DOMAIN = "media-fetch-disabled.invalid"


def media_flags(env: Mapping[str, str]) -> list[str]:
    """vLLM's own media allowlist (since v0.11.0), the second wall behind the gateway's guard.

    vLLM matches host names exactly, the gateway also admits their subdomains: list each host that
    serves media. See https://docs.vllm.ai/en/latest/usage/security.html (Restrict Domains Access).
    """
    domains = [d.strip().lower().lstrip(".") for d in env.get("GATEWAY_IMAGE_DOMAINS", "").split(",")]
    return ["--allowed-media-domains", *([d for d in domains if d] or [_NO_MEDIA_DOMAIN])]


def engine_environment(env: Mapping[str, str], read_secret: object = None) -> dict[str, str]:
    """The engine's environment: HF_TOKEN read from HF_TOKEN_SECRET when one is named."""
    result = dict(env)
    # An allowlisted host must not redirect the engine elsewhere (vLLM checks only the first URL).
    result["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] = "0"
    secret = env.get("HF_TOKEN_SECRET")
    if secret and "HF_TOKEN" not in env:
        if read_secret is None:
            import boto3  # noqa: PLC0415 - only images that name a token secret pay for boto3

            client = boto3.client("secretsmanager")
            result["HF_TOKEN"] = client.get_secret_value(SecretId=secret)["SecretString"]
        else:
            result["HF_TOKEN"] = read_secret(secret)  # type: ignore[operator]
    return result


def gateway_command(env: Mapping[str, str]) -> list[str]:
    port = env.get("ENGINE_PORT", "8000")
    return [
        sys.executable, "-m", "inference_server",
        "--host", env.get("GATEWAY_HOST", "0.0.0.0"),  # noqa: S104 - the container's one published port
        "--port", env.get("GATEWAY_PORT", "8080"),
        "--upstream", "vllm",
        "--upstream-url", f"http://{ENGINE_HOST}:{port}/v1",
    ]  # fmt: skip


def engine_ready(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ENGINE_HOST}:{port}/v1/models", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


class Supervisor:
    def __init__(
        self, engine: list[str], gateway: list[str], env: dict[str, str], grace: float,
        engine_env: dict[str, str] | None = None, start_timeout: float = 3600.0,
    ) -> None:  # fmt: skip
        self._engine_argv = engine
        self._gateway_argv = gateway
        self._env = env
        self._engine_env = engine_env or env
        self._grace = grace
        self._start_timeout = start_timeout
        self._stop = threading.Event()
        self._signal = 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signal = signum
        self._stop.set()

    def _terminate(self, process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(self._grace)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        # No shell: the argv comes from the image's own settings, and the container runs nothing else.
        engine = subprocess.Popen(self._engine_argv, env=self._engine_env)
        port = self._env.get("ENGINE_PORT", "8000")
        waited = 0.0
        while not engine_ready(port):
            if engine.poll() is not None or self._stop.wait(0.5) or waited > self._start_timeout:
                code = self._terminate(engine)
                if self._stop.is_set():
                    return 0
                print(f"supervisor: the engine did not become ready (exit {code})", file=sys.stderr)
                return code if code > 0 else 1
            waited += 0.5
        gateway = subprocess.Popen(self._gateway_argv, env=self._env)
        try:
            while not self._stop.wait(0.2):
                if engine.poll() is not None or gateway.poll() is not None:
                    break
            if self._stop.is_set():
                # The gateway first: its in-flight streams still need the engine while it drains.
                self._terminate(gateway, self._signal or signal.SIGTERM)
                self._terminate(engine, signal.SIGTERM)
                return 0
            dead, other = (engine, gateway) if engine.poll() is not None else (gateway, engine)
            name = "engine" if dead is engine else "gateway"
            print(
                f"supervisor: the {name} exited with {dead.returncode}; stopping the other", file=sys.stderr
            )
            self._terminate(other)
            code = dead.returncode
            return code if code > 0 else 1
        finally:
            for process in (gateway, engine):
                if process.poll() is None:
                    process.kill()
                    process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    if args[:1] == ["serve"]:
        # SageMaker's `docker run <image> serve`.
        args = args[1:]
        env["GATEWAY_SAGEMAKER_CONTRACT"] = "1"
    grace = float(env.get("SUPERVISOR_GRACE", "60"))
    start_timeout = float(env.get("ENGINE_START_TIMEOUT", "3600"))
    # The token is for the engine's downloads; the gateway, which faces clients, never holds it.
    gateway_env = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    return Supervisor(
        engine_command(args, env),
        gateway_command(env),
        gateway_env,
        grace,
        engine_environment(env),
        start_timeout,
    ).run()


if __name__ == "__main__":
    sys.exit(main())
