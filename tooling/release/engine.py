"""A release: every stack of one environment converged on the checkout, smoke-tested, recorded.

The steps, in order, each in the report:
1. checkout: the commit released is the checkout's HEAD (`--commit` must name it);
2. load: every deployment of the environment rendered and linted; any file that does not load stops the
   release before anything changes (a missing file would read as "delete that stack");
3. previous: the latest release record; a commit that is not a descendant of it is "superseded" and
   changes nothing, so a re-run of an old workflow run cannot move the environment back;
   quotas: the account's GPU quotas against every stack at its maximum scale (tooling/quotas.py);
4. deploy: every stack, through tooling/deploy.py (change sets; an unchanged stack costs one
   DescribeStacks), with the image tags the checkout names (tooling/release/images.py);
5. smoke: what was created or updated, through tooling.smoke.check_deployment;
6. rollback, when a deploy or a smoke test failed: the previous record restored (tooling/release/rollback.py);
7. prune: stacks of this repository and environment that no file asks for, only once the rest passed
   (a deleted endpoint is the one change a rollback could not undo cheaply);
8. record: what now runs, written to the environment's artifacts bucket (tooling/release/records.py).

Release runs where the environment's reviewers already approved it (the workflow's GitHub environment), so
it acts as `deploy --yes`: protected stacks are pruned and failed ones recreated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tooling import aws, gitbase, ownership, planning, repository
from tooling import cloudformation as cf
from tooling import deploy as engine
from tooling import smoke as smoke_checks
from tooling.accounts import environments as environments_file
from tooling.cache import DEFAULT_DIR, Cache
from tooling.release import images, records
from tooling.release.rollback import roll_back

# released: something changed; unchanged: nothing needed to; superseded: a newer release is recorded.
SUCCESS = ("released", "unchanged", "superseded")
CHANGED = ("created", "updated")

Smoke = Callable[[repository.DeploymentFile], smoke_checks.Report]


@dataclass
class Step:
    name: str
    outcome: str  # ok | failed | refused | skipped
    detail: str = ""
    seconds: float = 0.0


@dataclass
class StackReport:
    stack_name: str
    region: str = ""
    deploy: str = ""  # a tooling.deploy outcome; "" when the release stopped before deploying
    reasons: list[str] = field(default_factory=list)
    endpoint: str = ""
    image_tags: dict[str, str] = field(default_factory=dict)
    smoke: dict[str, Any] | None = None
    rollback: str = ""
    rollback_reasons: list[str] = field(default_factory=list)


@dataclass
class Report:
    environment: str
    commit: str = ""
    outcome: str = ""
    previous: str = ""  # the commit of the record this release started from
    record: str = ""  # the key of the record this release wrote
    steps: list[Step] = field(default_factory=list)
    stacks: list[StackReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def stack(self, name: str) -> StackReport:
        found = next((s for s in self.stacks if s.stack_name == name), None)
        if found is None:
            found = StackReport(name)
            self.stacks.append(found)
        return found


@dataclass
class Inputs:
    root: Path
    environment: str
    commit: str | None = None  # --commit: must be the checkout's HEAD
    rollback: bool = True
    smoke: Smoke | None = None  # default: tooling.smoke.check_deployment with the stack's own key
    on_event: Callable[[str, str], None] = lambda stack, line: None
    timeout: float = 3600.0
    max_parallel: int = 4
    image_wait: float = 900.0
    store: records.Store | None = None  # default: the environment's artifacts bucket
    ignore_quotas: bool = False  # release even when a quota would be exceeded at maximum scale


class Stop(Exception):
    """The release ends at this step with this outcome (the report says why)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def default_smoke(deployment: repository.DeploymentFile) -> smoke_checks.Report:
    # Looked up at call time: tooling/smoke.py dispatches internal endpoints to their in-VPC probe.
    return smoke_checks.check_deployment(deployment, key_mode="secret", retries=2)


class _Run:
    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.report = Report(inputs.environment)
        self.cancel = threading.Event()

    def step(self, name: str, outcome: str, detail: str = "", started: float | None = None) -> None:
        seconds = time.monotonic() - started if started is not None else 0.0
        self.report.steps.append(Step(name, outcome, detail, round(seconds, 3)))
        self.inputs.on_event("release", f"{name}: {outcome}" + (f": {detail}" if detail else ""))

    def stop(self, name: str, outcome: str, detail: str, started: float | None = None) -> Stop:
        self.step(name, "refused" if outcome in ("refused", "superseded") else "failed", detail, started)
        return Stop(outcome)


def release(inputs: Inputs) -> Report:
    """Run the release; never raises for what AWS or the checkout answer (the report says it).
    Ctrl-C (KeyboardInterrupt) is the caller's: change sets not yet executed are deleted on the way."""
    run = _Run(inputs)
    try:
        run.report.outcome = _release(run)
    except Stop as stop:
        run.report.outcome = stop.outcome
    except (gitbase.GitError, ownership.NoIdentity) as exc:
        run.step("error", "refused", str(exc))
        run.report.outcome = "refused"
    except Exception as exc:  # an AWS call that failed outside a stack's own deploy: reported, not raised
        run.step("error", "failed", cf.describe_error(exc))
        run.report.outcome = "failed"
    return run.report


def _release(run: _Run) -> str:
    inputs, report = run.inputs, run.report
    root, env = inputs.root, inputs.environment
    started = time.monotonic()
    report.commit = commit = _checkout(run)
    run.step("checkout", "ok", commit, started)

    started = time.monotonic()
    snapshot = planning.head_snapshot(root, Cache(root / DEFAULT_DIR), lint=True)
    states = sorted((s for s in snapshot.stacks.values() if s.environment == env), key=lambda s: s.stack_name)
    if not states and not (root / repository.DEPLOYMENTS_DIR / env).is_dir():
        raise run.stop("load", "refused", f"no environment {env} in deployments/", started)
    if blockers := engine.prune_blockers(snapshot, {env}):
        for state in states:
            report.stack(state.stack_name).reasons = list(state.errors)
        errors = [e for s in states for e in s.errors] or blockers
        raise run.stop("load", "refused", "; ".join(errors), started)
    config = _environments(run, root)
    files = {f.stack_name: f for f in repository.load(root).valid if f.environment == env}
    tags: dict[str, dict[str, str]] = {}
    commits: dict[str, str] = {}
    try:
        for state in states:
            tags[state.stack_name] = images.stack_image_tags(
                root, files[state.stack_name].spec, commits=commits
            )
    except images.NoImageCommit as exc:
        raise run.stop("load", "refused", str(exc), started) from None
    for state in states:
        entry = report.stack(state.stack_name)
        entry.region, entry.image_tags = state.region, tags[state.stack_name]
    identity = ownership.repository_of(root)
    run.step("load", "ok", f"{len(states)} stack(s)", started)

    started = time.monotonic()
    try:
        store = inputs.store or records.Store(env, home_region(env, config, states))
        previous, etag = store.latest()
    except records.RecordError as exc:
        raise run.stop("previous", "refused", str(exc), started) from None
    _check_descends(run, previous, commit, started)
    _check_quotas(run, [s.stack_name for s in states])

    regions = {s.region for s in snapshot.stacks.values() if s.region} | ownership.default_regions()
    if previous is not None:
        regions |= {s.region for s in previous.stacks.values()}
    options = engine.Options(
        stack_image_tags=tags, timeout=inputs.timeout, max_parallel=inputs.max_parallel,
        on_event=inputs.on_event, environments=config, image_wait=inputs.image_wait, repository=identity,
        commit=commit, root=root, regions=regions, yes=True,
    )  # fmt: skip
    before = _describe_all({s.stack_name: s.region for s in states})

    started = time.monotonic()
    results = engine.deploy_all(states, options, run.cancel)
    for result in results:
        entry = report.stack(result.stack_name)
        entry.deploy, entry.reasons, entry.endpoint = result.outcome, list(result.reasons), result.endpoint
    failed = [r.stack_name for r in results if r.outcome in engine.FAILED]
    changed = [r.stack_name for r in results if r.outcome in CHANGED]
    run.step("deploy", "failed" if failed else "ok", _counts(results), started)

    if not failed:
        started = time.monotonic()
        failed = _smoke(run, [files[n] for n in changed])
        run.step("smoke", "failed" if failed else ("ok" if changed else "skipped"),
                 f"{len(changed) - len(failed)}/{len(changed)} passed" if changed else "nothing changed",
                 started)  # fmt: skip
    if failed:
        if not inputs.rollback:
            run.step("rollback", "skipped", "--no-rollback: the environment is left as the failure left it")
            return "failed"
        started = time.monotonic()
        undone = roll_back(previous, states, before, results, options, run.cancel, environment=env)
        for result in undone:
            entry = report.stack(result.stack_name)
            entry.rollback, entry.rollback_reasons = result.outcome, list(result.reasons)
        broken = [r.stack_name for r in undone if r.outcome in engine.FAILED]
        restored = f"to {previous.commit[:12]}" if previous else "no previous release: created stacks deleted"
        run.step("rollback", "failed" if broken else "ok",
                 (f"could not restore {', '.join(broken)}" if broken else restored), started)  # fmt: skip
        return "rollback-failed" if broken else "rolled-back"

    started = time.monotonic()
    pruned = engine.prune(snapshot, {env}, options=options, cancel=run.cancel)
    for result in pruned:
        entry = report.stack(result.stack_name)
        entry.deploy, entry.reasons = result.outcome, list(result.reasons)
    prune_failed = [r.stack_name for r in pruned if r.outcome in engine.FAILED]
    deleted = [r.stack_name for r in pruned if r.outcome == "deleted"]
    run.step("prune", "failed" if prune_failed else "ok",
             f"deleted {', '.join(deleted)}" if deleted else "nothing to delete", started)  # fmt: skip

    started = time.monotonic()
    if previous is not None and previous.commit == commit and not changed and not deleted:
        run.step("record", "skipped", f"{previous.key} already records this commit", started)
        report.record = previous.key
    else:
        try:
            empty = {r.stack_name for r in results if r.outcome == "no-change"}
            record = build_record(env, commit, identity, states, tags, confirmed=empty)
            report.record = store.write(record, etag)
        except records.RecordError as exc:
            run.step("record", "failed", str(exc), started)
            return "failed"
        run.step("record", "ok", report.record, started)
    if changed:
        _activate_budget_tag(run)
    if prune_failed:
        return "failed"
    return "released" if changed or deleted else "unchanged"


def _checkout(run: _Run) -> str:
    root, wanted = run.inputs.root, run.inputs.commit
    head = gitbase.head_commit(root)
    if head is None:
        raise run.stop("checkout", "refused", f"{root} is not a git checkout: a release records a commit")
    if wanted:
        try:
            resolved = str(gitbase.git(root, "rev-parse", "--verify", f"{wanted}^{{commit}}"))
        except gitbase.GitError:
            resolved = ""
        if resolved != head:
            raise run.stop(
                "checkout",
                "refused",
                f"--commit {wanted} is not the checkout's HEAD ({head[:12]}): check it out first",
            )
    return head


def _environments(run: _Run, root: Path) -> Any:
    try:
        loaded = environments_file.load(root)
    except environments_file.EnvironmentsError as exc:
        lines = [f"{d.location.file}:{d.location.line}: {d.message}" for d in exc.diagnostics]
        raise run.stop("load", "refused", "; ".join(lines) or str(exc)) from None
    return loaded.config if loaded else None


def home_region(environment: str, config: Any, states: list[Any]) -> str:
    """Where the environment's records live: its first region in environments.yaml, else its stacks'
    first region, else the SDK's default region."""
    if config is not None and environment in config.environments:
        return str(config.environments[environment].regions[0])
    found = sorted({s.region for s in states if s.region}) or sorted(ownership.default_regions())
    if not found:
        raise records.RecordError(f"{environment}: no region to keep its release records in; set AWS_REGION")
    return found[0]


def _check_descends(run: _Run, previous: records.Record | None, commit: str, started: float) -> None:
    report = run.report
    if previous is None:
        run.step("previous", "ok", "no release recorded yet", started)
        return
    report.previous = previous.commit
    if previous.commit == commit:
        run.step("previous", "ok", f"{previous.key} is this commit: converging on it again", started)
        return
    try:
        descends = gitbase.is_ancestor(run.inputs.root, previous.commit, commit)
    except gitbase.GitError as exc:
        raise run.stop("previous", "refused", f"git: {exc}", started) from None
    if descends is None:
        raise run.stop(
            "previous", "refused",
            f"the last release is {previous.commit[:12]} and this clone cannot tell whether {commit[:12]} "
            "descends from it: check out with fetch-depth: 0 (or git fetch --unshallow origin)", started,
        )  # fmt: skip
    if not descends:
        raise run.stop(
            "previous", "superseded",
            f"{previous.key} released {previous.commit[:12]}, which {commit[:12]} does not descend from: "
            "releasing it would move the environment back; nothing was changed", started,
        )  # fmt: skip
    run.step("previous", "ok", f"{previous.key} ({previous.commit[:12]})", started)


def _check_quotas(run: _Run, stack_names: list[str]) -> None:
    """The account's quotas against every stack at its maximum scale, before any change
    (tooling/quotas.py): a GPU fleet past its quota fails no deploy, it just never grows, so an exceeded
    one refuses the release."""
    from tooling import quotas  # noqa: PLC0415

    started = time.monotonic()
    report = quotas.for_deploy(stack_names, run.inputs.root)
    for level, line in report.lines():
        run.inputs.on_event("release", f"quota {level}: {line}")
    exceeded = [check.message() for check in report.exceeded]
    if exceeded and not run.inputs.ignore_quotas:
        raise run.stop("quotas", "refused", "; ".join(exceeded), started)
    detail = (
        f"{len(exceeded)} exceeded (--ignore-quotas)"
        if exceeded
        else ("ok" if report.checked else report.note)
    )
    run.step("quotas", "ok", detail, started)


def _describe_all(regions: dict[str, str]) -> dict[str, dict[str, Any] | None]:
    """Every stack as it is before the release changes anything (None: it does not exist)."""
    return {
        name: cf.describe(aws.client("cloudformation", region), name)
        for name, region in sorted(regions.items())
    }


def _counts(results: list[engine.Result]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no stacks"


def _smoke(run: _Run, deployments: list[repository.DeploymentFile]) -> list[str]:
    """Smoke-test each deployment; the names of those that failed."""
    check = run.inputs.smoke or default_smoke

    def one(deployment: repository.DeploymentFile) -> tuple[str, dict[str, Any]]:
        try:
            result = check(deployment)
            return deployment.stack_name, result.to_json()
        except Exception as exc:  # not smokeable, or the check itself broke: the stack is not proven
            return deployment.stack_name, {"ok": False, "error": f"{type(exc).__name__}: {exc}", "checks": []}

    if not deployments:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(run.inputs.max_parallel, len(deployments)))) as pool:
        outcomes = list(pool.map(one, deployments))
    failed = []
    for name, outcome in outcomes:
        run.report.stack(name).smoke = outcome
        run.inputs.on_event(name, f"smoke: {'passed' if outcome['ok'] else 'FAILED'}")
        if not outcome["ok"]:
            failed.append(name)
    return failed


def build_record(
    environment: str, commit: str, identity: str, states: list[Any], tags: dict[str, dict[str, str]],
    *, confirmed: set[str] = frozenset(),  # type: ignore[assignment]
) -> records.Record:  # fmt: skip
    """The record of what runs now, read back from each stack: a stack that does not run exactly what
    this release rendered (its hash tag differs) is an error, never recorded as if it did. `confirmed`:
    stacks whose change set CloudFormation found empty, which run this template whatever their tag says
    (a stack deployed before the tag was computed as it is now)."""
    record = records.Record(environment, commit, identity, records.now_utc().isoformat())
    for state in states:
        stack = cf.describe(aws.client("cloudformation", state.region), state.stack_name)
        if stack is None or stack["StackStatus"] not in cf.SUCCESS | {"UPDATE_ROLLBACK_COMPLETE"}:
            raise records.RecordError(f"{state.stack_name}: {(stack or {}).get('StackStatus', 'gone')}")
        text = records.compact(state.text)
        parameters = records.recorded_parameters(text, stack)
        expected = cf.template_hash(text, parameters, ownership.ownership_tags(state, identity))
        deployed = cf.tags_of(stack).get(cf.HASH_TAG, "")
        if state.stack_name in confirmed:
            deployed = expected
        if deployed != expected:
            raise records.RecordError(
                f"{state.stack_name}: runs template hash {deployed or 'none'}, not this release's {expected}"
            )
        record.stacks[state.stack_name] = records.StackRecord(
            state.stack_name, state.name, state.file, state.region, text, parameters,
            {k: v for k, v in parameters.items() if k in tags.get(state.stack_name, {})}, deployed,
        )  # fmt: skip
    return record


def _activate_budget_tag(run: _Run) -> None:
    # Budgets read $0 until their cost-allocation tag is active, which AWS accepts only once the tag has
    # appeared in billing data: every release that changed something asks again (tooling/accounts/billing.py).
    from tooling.accounts import billing  # noqa: PLC0415

    activation = billing.activate(aws.client("ce", billing.REGION))
    run.inputs.on_event("release", activation.message)
