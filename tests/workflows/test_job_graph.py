"""Which jobs of a run actually start, as GitHub decides it: each job's `if:` evaluated against what
its needs did, with the implicit `success()` GitHub adds to a condition that names no status function.

That implicit `success()` is not scoped to the job's own `needs`: it is false when any job up the
chain was skipped or failed, so a job that needs only a succeeded job is still skipped when a job two
hops up was skipped (https://github.com/actions/runner/issues/2205, open since 2022). The docs:
"A default status check of success() is applied unless you include one of these functions", and
"If a job fails or is skipped, all jobs that need it are skipped unless the jobs use a conditional
expression that causes the job to continue"
(https://docs.github.com/en/actions/reference/workflows-and-actions/expressions#status-check-functions,
https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-syntax#jobsjob_idneeds).
deploy.yml skips a build whenever its image is in the registry already, which is most pushes, so every
job after the first release must not lean on the implicit check.

The evaluator below covers the expression language the workflows' job conditions use (literals,
property paths, `!`, `==`/`!=` compared case-insensitively as GitHub compares strings, `&&`/`||`
returning an operand, parentheses, and the four status functions), and the scenarios run the real
conditions from the workflow files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")
TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\))"
    r"|(?P<call>[A-Za-z]+)\(\)|(?P<word>[A-Za-z_][\w.-]*))"
)


def tokens(expression: str) -> list[tuple[str, str]]:
    out, position = [], 0
    expression = expression.strip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        assert match and match.end() > position, f"unsupported expression at {expression[position:]!r}"
        kind = match.lastgroup
        out.append((kind, match[kind]))
        position = match.end()
    return out


@dataclass
class Context:
    """What a job's condition can see: its needs' results and outputs, and the event."""

    needs: dict[str, dict[str, Any]]
    ancestors: list[str]
    results: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False

    def call(self, name: str) -> bool:
        upstream = [self.results[a] for a in self.ancestors]
        return {
            "success": not self.cancelled and all(r == "success" for r in upstream),
            "failure": any(r == "failure" for r in upstream),
            "always": True,
            "cancelled": self.cancelled,
        }[name]

    def lookup(self, path: str) -> Any:
        if path in ("true", "false"):
            return path == "true"
        head, _, rest = path.partition(".")
        if head == "needs":
            job, _, tail = rest.partition(".")
            need = self.needs[job]  # a job can only read the needs it lists (actionlint checks too)
            if tail == "result":
                return need["result"]
            assert tail.startswith("outputs."), path
            return need["outputs"].get(tail.removeprefix("outputs."), "")
        return self.values.get(path)


def truthy(value: Any) -> bool:
    return value not in (None, False, "", 0)


def equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if left is None or right is None:
        return (left or "") == (right or "")
    return left == right


class Parser:
    def __init__(self, expression: str, context: Context) -> None:
        self.items = tokens(expression)
        self.at = 0
        self.context = context

    def peek(self) -> str | None:
        return self.items[self.at][1] if self.at < len(self.items) else None

    def take(self) -> tuple[str, str]:
        self.at += 1
        return self.items[self.at - 1]

    def parse(self) -> Any:
        value = self.either()
        assert self.at == len(self.items), "trailing tokens"
        return value

    def either(self) -> Any:
        value = self.both()
        while self.peek() == "||":
            self.take()
            right = self.both()
            value = value if truthy(value) else right
        return value

    def both(self) -> Any:
        value = self.comparison()
        while self.peek() == "&&":
            self.take()
            right = self.comparison()
            value = right if truthy(value) else value
        return value

    def comparison(self) -> Any:
        value = self.unary()
        while self.peek() in ("==", "!="):
            operator = self.take()[1]
            right = self.unary()
            value = equal(value, right) if operator == "==" else not equal(value, right)
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        kind, text = self.take()
        if text == "(":
            value = self.either()
            assert self.take()[1] == ")"
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "call":
            return self.context.call(text)
        return self.context.lookup(text)


def condition(job: dict[str, Any]) -> str:
    text = str(job.get("if", "")).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    text = " ".join(text.split())
    if not any(re.search(rf"\b{f}\(\)", text) for f in STATUS_FUNCTIONS):
        text = f"success() && ({text})" if text else "success()"
    return text


def needs_of(job: dict[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def ancestors(jobs: dict[str, Any], job_id: str) -> list[str]:
    found: list[str] = []
    todo = needs_of(jobs[job_id])
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo += needs_of(jobs[current])
    return found


def simulate(
    workflow: str,
    ran: dict[str, tuple[str, dict[str, str]]],
    values: dict[str, Any] | None = None,
    *,
    cancelled: bool = False,
) -> dict[str, str]:
    """Each job's result in one run: `skipped` when its condition is false, else what `ran` says it
    did (result and outputs; `success` with no outputs when not given)."""
    jobs = yaml.safe_load((WORKFLOWS / f"{workflow}.yml").read_text())["jobs"]
    results: dict[str, str] = {}
    outputs: dict[str, dict[str, str]] = {}
    pending = list(jobs)
    while pending:
        job_id = next(j for j in pending if all(n in results for n in needs_of(jobs[j])))
        pending.remove(job_id)
        job = jobs[job_id]
        context = Context(
            needs={n: {"result": results[n], "outputs": outputs[n]} for n in needs_of(job)},
            ancestors=ancestors(jobs, job_id),
            results=results,
            values=values or {},
            cancelled=cancelled,
        )
        if truthy(Parser(condition(job), context).parse()):
            results[job_id], outputs[job_id] = ran.get(job_id, ("success", {}))
        else:
            results[job_id], outputs[job_id] = "skipped", {}
    return results


MATRIX = '{"include":[{"image":"gateway","tag":"1-abc"}]}'


def images(gateway: bool, vllm: bool) -> tuple[str, dict[str, str]]:
    return "success", {"gateway": MATRIX if gateway else "", "vllm": MATRIX if vllm else ""}


CURRENT = ("success", {"current": "true"})
SUPERSEDED = ("success", {"current": "false"})
RELEASES = ("release-dev", "release-staging", "release-prod")


def released(results: dict[str, str]) -> list[str]:
    return [job for job in RELEASES if results[job] == "success"]


@pytest.mark.parametrize(
    ("gateway", "vllm"),
    [(True, True), (True, False), (False, True), (False, False)],
    ids=["both-built", "gateway-only", "vllm-only", "nothing-to-build"],
)
def test_every_environment_is_released_whichever_builds_were_skipped(gateway, vllm):
    results = simulate(
        "deploy",
        {
            "images": images(gateway, vllm),
            "release-dev": CURRENT,
            "release-staging": CURRENT,
            "release-prod": CURRENT,
        },
    )
    assert results["build-gateway"] == ("success" if gateway else "skipped")
    assert results["build-vllm"] == ("success" if vllm else "skipped")
    assert results["approve-prod"] == "success"
    assert released(results) == list(RELEASES)


@pytest.mark.parametrize("outcome", ["failure", "cancelled"])
@pytest.mark.parametrize("build", ["build-gateway", "build-vllm"])
def test_a_failed_or_cancelled_build_releases_nothing(build, outcome):
    results = simulate("deploy", {"images": images(True, True), build: (outcome, {})})
    assert released(results) == []
    assert results["approve-prod"] == "skipped", "nobody is asked to approve a release that cannot happen"


def test_no_matrix_no_release():
    results = simulate("deploy", {"images": ("failure", {})})
    assert [j for j, r in results.items() if r != "skipped"] == ["images"]


def test_a_failed_dev_release_stops_there():
    results = simulate("deploy", {"images": images(False, False), "release-dev": ("failure", {})})
    assert results["release-staging"] == results["approve-prod"] == results["release-prod"] == "skipped"


@pytest.mark.parametrize("superseded_at", ["release-dev", "release-staging"])
def test_a_superseded_commit_goes_no_further_and_asks_no_reviewer(superseded_at):
    ran = {"images": images(False, True), "release-dev": CURRENT, "release-staging": CURRENT}
    ran[superseded_at] = SUPERSEDED
    results = simulate("deploy", ran)
    assert results[superseded_at] == "success"
    assert results["approve-prod"] == results["release-prod"] == "skipped"


def test_a_rejected_approval_does_not_release_prod():
    results = simulate(
        "deploy",
        {
            "images": images(True, False),
            "release-dev": CURRENT,
            "release-staging": CURRENT,
            "approve-prod": ("failure", {}),
        },
    )
    assert released(results) == ["release-dev", "release-staging"]
    assert results["release-prod"] == "skipped"


def test_a_cancelled_run_starts_nothing_more():
    results = simulate("deploy", {"images": images(True, True)}, cancelled=True)
    assert released(results) == []


# rotate-keys: a schedule and a dispatch of dev or staging need no approval; one that names prod does.
def dispatch(environment: str) -> dict[str, Any]:
    return {"github.event_name": "workflow_dispatch", "inputs.environment": environment}


@pytest.mark.parametrize(
    ("values", "approval", "rotates"),
    [
        ({"github.event_name": "schedule", "inputs.environment": None}, None, True),
        (dispatch("dev"), None, True),
        (dispatch("staging"), None, True),
        (dispatch("prod"), "success", True),
        (dispatch("all"), "success", True),
        (dispatch("prod"), "failure", False),
        (dispatch("all"), "failure", False),
    ],
)
def test_key_rotation_waits_for_the_prod_reviewers_only_when_it_names_prod(values, approval, rotates):
    ran = {"approve-prod": (approval, {})} if approval else {}
    results = simulate("rotate-keys", ran, values)
    assert results["approve-prod"] == (approval or "skipped")
    assert results["rotate"] == ("success" if rotates else "skipped")


def test_the_evaluator_applies_the_implicit_check_to_every_ancestor():
    """The rule the deploy scenarios stand on, on a three-job chain: a skipped grandparent skips a
    job whose one need succeeded, unless its condition names a status function."""
    jobs = {
        "a": {"if": "false"},
        "b": {"needs": "a", "if": "${{ !cancelled() }}"},
        "c": {"needs": "b"},
        "d": {"needs": "b", "if": "${{ !cancelled() && needs.b.result == 'success' }}"},
    }
    results = {"a": "skipped", "b": "success"}
    for job_id, expected in (("c", False), ("d", True)):
        context = Context(
            needs={"b": {"result": "success", "outputs": {}}},
            ancestors=ancestors(jobs, job_id),
            results=results,
        )
        assert truthy(Parser(condition(jobs[job_id]), context).parse()) is expected


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_the_drift_issue_is_kept_whatever_the_detections_did(outcome):
    assert simulate("drift", {"drift": (outcome, {})})["issue"] == "success"
    assert simulate("drift", {"drift": (outcome, {})}, cancelled=True)["issue"] == "skipped"


@pytest.mark.parametrize("plan", ["success", "failure"])
def test_the_plan_comment_is_written_even_when_a_plan_failed(plan):
    changed = ("success", {"any": "true", "environments": '["dev"]'})
    assert simulate("pr", {"changed": changed, "plan": (plan, {})})["comment"] == "success"
    nothing = simulate("pr", {"changed": ("success", {"any": "false", "environments": "[]"})})
    assert nothing["plan"] == nothing["comment"] == "skipped"


@pytest.mark.parametrize(("role", "ran"), [("", "skipped"), ("arn:aws:iam::1:role/p", "success")])
def test_prices_skip_cleanly_without_their_role(role, ran):
    results = simulate(
        "prices", {"refresh": ("success", {"moved": "true"})}, {"vars.AWS_PRICING_ROLE_ARN": role}
    )
    assert results["refresh"] == results["pull-request"] == ran
