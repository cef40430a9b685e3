"""The smoke checks of an endpoint, and the Lambda handler that runs them from inside its VPC.

One definition for both callers: `deployctl smoke` imports `run` and calls the endpoint itself when it is
public; for an internal load balancer (network.public: false) a runner outside the VPC cannot reach it,
so the CLI invokes the stack's SmokeProbeFunction, which ships this file inline (ZipFile) and runs the
same `run` in the stack's private subnets. Standard library only: the Lambda python3.13 runtime has
nothing else we may rely on (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).

The checks: health, the model list, a chat completion, a streamed one (its time to first token), a
request with a stranger's key refused with 401 (when the endpoint takes keys), and an image (when the
model takes images). Failures are named the way the openai SDK names them (AuthenticationError,
APIConnectionError, ...), so a report reads the same as a client's traceback would.

The API key arrives in the invocation payload and is only ever sent as a Bearer header: this module
prints and logs nothing, and an answer's text in a report is cut to 40 characters.
"""

import json
import os
import time
import urllib.error
import urllib.request

# A request's own timeout: long enough for a model's first token after queueing behind real traffic
# and a long prefill on a loaded GPU (seconds), with room for an ALB that answers slowly while a
# target is being replaced; short enough that six checks fit in Lambda's 900 s ceiling.
REQUEST_TIMEOUT_SECONDS = 120.0
# The handler answers this long before Lambda would stop it, so a report always comes back.
MARGIN_SECONDS = 15.0
# The most checks one run makes (health, models, chat, stream, unauthorised, image).
CHECKS = ("health", "models", "chat", "stream", "unauthorised", "image")
TIMEOUT_VARIABLE = "SMOKE_REQUEST_TIMEOUT_SECONDS"
STRANGER_KEY = "sk-not-a-key-of-this-endpoint"
PROMPT = [{"role": "user", "content": "Reply with the single word: ready"}]
# A 1x1 PNG: the smallest image every vision model accepts, so the check costs one token of vision.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5"
    "ErkJggg=="
)
# The openai SDK's exception names by status, and the statuses it retries (408, 409, 429, 5xx).
STATUS_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
RETRIED = (408, 409, 429)


class CheckFailed(Exception):
    """A check's failure, named as a client would see it (`kind`)."""

    def __init__(self, kind, message, retry=False):
        super().__init__(message)
        self.kind = kind
        self.retry = retry


class Endpoint:
    """HTTP to one endpoint with a per-request timeout, SDK-like retries, and an overall deadline."""

    def __init__(self, base, key, timeout, retries, deadline=None, clock=time.monotonic, sleep=time.sleep):
        self.base, self.key, self.timeout, self.retries = base.rstrip("/"), key, timeout, retries
        self.deadline, self.clock, self.sleep = deadline, clock, sleep

    def _budget(self):
        if self.deadline is None:
            return self.timeout
        left = self.deadline - self.clock()
        if left <= 1:
            raise CheckFailed("APITimeoutError", "no time left in the probe's budget for this check")
        return min(self.timeout, left)

    def open(self, path, body=None, key=None, retries=None):
        """The open response of a GET (body None) or a JSON POST; retried on connection errors and
        retryable statuses with the SDK's backoff (0.5 s doubling, at most 8 s)."""
        attempts = (self.retries if retries is None else retries) + 1
        for attempt in range(attempts):
            try:
                return self._open_once(path, body, self.key if key is None else key)
            except CheckFailed as failure:
                if not failure.retry or attempt == attempts - 1:
                    raise
            self.sleep(min(0.5 * 2**attempt, 8.0))
        raise AssertionError("unreachable")

    def _open_once(self, path, body, key):
        headers = {"Accept": "application/json", "User-Agent": "deployctl-smoke"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self._budget())
        except urllib.error.HTTPError as error:
            status = error.code
            text = error.read(2000).decode("utf-8", "replace")
            error.close()
            raise CheckFailed(
                STATUS_NAMES.get(status, "InternalServerError" if status >= 500 else "APIStatusError"),
                f"Error code: {status} - {_message(text)}",
                retry=status in RETRIED or status >= 500,
            ) from None
        except TimeoutError:
            raise CheckFailed("APITimeoutError", "Request timed out.", retry=True) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise CheckFailed("APITimeoutError", "Request timed out.", retry=True) from None
            raise CheckFailed("APIConnectionError", f"Connection error: {reason}", retry=True) from None

    def json(self, path, body=None, key=None, retries=None):
        with self.open(path, body, key, retries) as reply:
            try:
                return json.loads(reply.read())
            except ValueError:
                raise CheckFailed("APIResponseValidationError", "the answer is not JSON") from None


def _message(text):
    try:
        error = json.loads(text).get("error")
        return str(error.get("message") if isinstance(error, dict) else error)[:200]
    except (ValueError, AttributeError):
        return text.strip().splitlines()[0][:200] if text.strip() else "(no body)"


def _events(reply):
    """The JSON payloads of a server-sent event stream, up to `data: [DONE]`."""
    for raw in reply:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            raise CheckFailed("APIResponseValidationError", "a stream event is not JSON") from None
        if isinstance(event, dict) and event.get("error"):
            raise CheckFailed("APIError", f"the stream reported an error: {_message(data)}")
        yield event


def _timed(checks, name, action, clock):
    started = clock()
    try:
        outcome = action()
        detail, first = outcome if isinstance(outcome, tuple) else (outcome, None)
        checks.append(_check(name, True, clock() - started, detail, first))
    except Exception as exc:  # every failure is a failed check, never a crash of the run
        kind = getattr(exc, "kind", type(exc).__name__)
        message = str(exc).splitlines()[0][:300] if str(exc) else kind
        checks.append(_check(name, False, clock() - started, f"{kind}: {message}", None))


def _check(name, ok, seconds, detail, first):
    return {"name": name, "ok": ok, "seconds": seconds, "detail": detail, "first_token_seconds": first}


def run(
    url,
    model,
    key,
    *,
    images,
    timeout=REQUEST_TIMEOUT_SECONDS,
    retries=1,
    deadline=None,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Smoke-test `url` (the endpoint, without /v1): the list of checks, each a dict of name, ok,
    seconds, detail and first_token_seconds. `key` None: the endpoint takes no key."""
    api = Endpoint(url, key, timeout, retries, deadline, clock, sleep)
    checks = []

    def health():
        with api.open("/health") as reply:
            return f"HTTP {reply.status}"

    def models():
        names = [m.get("id") for m in api.json("/v1/models").get("data", [])]
        if model not in names:
            raise AssertionError(f"{model} not among {names}")
        return ", ".join(str(n) for n in names)

    def chat():
        reply = api.json(
            "/v1/chat/completions", {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
        )
        text = (reply["choices"][0]["message"].get("content") or "").strip()
        if not text:
            raise AssertionError("an empty answer")
        return repr(text[:40])

    def stream():
        started = clock()
        first, chunks, text = None, 0, ""
        body = {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0, "stream": True}
        with api.open("/v1/chat/completions", body) as reply:
            for event in _events(reply):
                choices = event.get("choices") or []
                delta = (choices[0].get("delta") or {}).get("content") if choices else None
                if delta:
                    first = first if first is not None else clock() - started
                    text += delta
                chunks += 1
        if first is None:
            raise AssertionError("the stream carried no content")
        return f"{chunks} chunks: {text.strip()[:40]!r}", first

    def refused():
        try:
            api.json("/v1/models", key=STRANGER_KEY, retries=0)
        except CheckFailed as failure:
            if failure.kind == "AuthenticationError":
                return "HTTP 401 without a valid key"
            raise
        raise AssertionError("a request without a valid key was served")

    def image():
        content = [{"type": "text", "text": "What colour is this pixel? One word."},
                   {"type": "image_url", "image_url": {"url": PIXEL}}]  # fmt: skip
        body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8}
        reply = api.json("/v1/chat/completions", body)
        return repr((reply["choices"][0]["message"].get("content") or "").strip()[:40])

    _timed(checks, "health", health, clock)
    _timed(checks, "models", models, clock)
    _timed(checks, "chat", chat, clock)
    _timed(checks, "stream", stream, clock)
    if key is not None:
        _timed(checks, "unauthorised", refused, clock)
    if images:
        _timed(checks, "image", image, clock)
    if key:
        # An endpoint that echoes the request in an error must not put the key in the report.
        for check in checks:
            check["detail"] = check["detail"].replace(key, "***")
    return checks


def handler(event, context):
    """Lambda entry point: the event carries what `deployctl smoke` knows (deployment, url, model, key,
    key_source, images, retries); the answer is its report, without the key."""
    timeout = float(os.environ.get(TIMEOUT_VARIABLE, REQUEST_TIMEOUT_SECONDS))
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    checks = run(
        event["url"],
        event["model"],
        event.get("key"),
        images=bool(event.get("images")),
        timeout=timeout,
        retries=max(0, min(int(event.get("retries", 1)), 5)),
        deadline=deadline,
    )
    return {
        "deployment": event.get("deployment", ""),
        "url": event["url"].rstrip("/"),
        "model": event["model"],
        "key_source": event.get("key_source", ""),
        "checks": checks,
    }
