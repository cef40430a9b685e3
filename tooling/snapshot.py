"""A tree of deployments as stacks: each file validated, rendered and linted, or why it could not be.

Work is cached by content: the key of a deployment is the hash of its file, its `_defaults.yaml` layers
and the code that renders it, so an unchanged file costs a hash and a cache read. Renders and lints that
miss the cache run on every core. The same function runs for the working tree and, in a subprocess on
that revision's own code, for a git base revision.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache as memoize
from pathlib import Path
from typing import Any

from tooling import repository
from tooling.cache import Cache, digest
from tooling.diagnostics import Diagnostic, Severity, format_text

CODE_FOLDERS = ("templates", "tooling")
# Below this many misses, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 6


@dataclass
class StackState:
    environment: str
    name: str
    file: str  # relative to the repository root
    region: str = ""
    text: str | None = None  # the rendered template; None when the file is invalid
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    monthly_usd: float | None = None  # the estimate at minimum scale
    over_budget: str | None = None
    # With fallback instance types: that estimate with the cheapest and with the dearest type.
    monthly_range_usd: list[float] | None = None

    @property
    def stack_name(self) -> str:
        return f"{self.environment}-{self.name}"

    @property
    def valid(self) -> bool:
        return self.text is not None and not self.errors


@dataclass
class Snapshot:
    stacks: dict[str, StackState]
    problems: list[str] = field(default_factory=list)  # misplaced files and other non-stack errors
    code_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "stacks": {k: asdict(v) for k, v in self.stacks.items()},
            "problems": self.problems,
            "code_version": self.code_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        # Another revision's code may know more (or fewer) fields: keep the ones this code knows.
        known = set(StackState.__dataclass_fields__)
        stacks = {
            k: StackState(**{f: x for f, x in v.items() if f in known}) for k, v in data["stacks"].items()
        }
        return cls(stacks, data["problems"], data["code_version"])


@memoize
def code_version(root: Path) -> str:
    """A hash of everything that decides a rendered template: our code and the libraries it uses."""
    parts: list[bytes | str] = []
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if (
                path.is_file()
                and path.suffix in (".py", ".json", ".yaml")
                and "__pycache__" not in path.parts
            ):
                parts += [str(path.relative_to(root)), path.read_bytes()]
    for package in ("troposphere", "cfn-lint", "pydantic"):
        parts.append(f"{package}=={importlib.metadata.version(package)}")
    return digest(*parts)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""  # the load reports it, located (YAML002)


@memoize
def lint_version(root: Path) -> str:
    """What decides the findings for a given template: cfn-lint's version and our rules' source.

    A template linted under the same key needs no second lint, whichever revision rendered it; a new
    cfn-lint or a changed project rule (tooling/cfn_rules/, tooling/lint.py) lints everything again.
    """
    parts: list[bytes | str] = [f"cfn-lint=={importlib.metadata.version('cfn-lint')}"]
    rules = sorted((root / "tooling" / "cfn_rules").rglob("*.py")) if (root / "tooling").is_dir() else []
    for path in [*rules, root / "tooling" / "lint.py"]:
        if path.is_file() and "__pycache__" not in path.parts:
            parts += [str(path.relative_to(root)), path.read_bytes()]
    return digest(*parts)


def lint_key(version: str, region: str, file: str, text: str) -> str:
    return digest("lint", version, region, file, text)


Lint = bool | Collection[str]  # every stack, none, or the stacks named


def _wants(lint: Lint, stack_name: str) -> bool:
    return lint is True or (not isinstance(lint, bool) and stack_name in lint)


def take(root: Path, *, lint: Lint = True, store: Cache | None = None, code: str | None = None) -> Snapshot:
    """Every deployment under `root`, as stacks; linted when `lint` names them (True: all).

    `code` names the code version (default: this code). Renders are cached by spec and code, lint
    findings by template text and `lint_version`.
    """
    store = store or Cache(None)
    root = root.resolve()
    here = Path(__file__).resolve().parents[1]
    code = code or code_version(here)
    environments, problems = repository.discover(root)
    keys: dict[Path, str] = {}
    for env, paths in environments.items():
        layers = b"".join(_read(p) for p in repository.defaults_files(root, env))
        for path in paths:
            relative = str(path.relative_to(root))
            # Linted or not, a render is the same: the base side of a plan reuses the head's renders.
            keys[path] = digest(code, env, relative, _read(path), layers)
    cached = {path: store.get(key) for path, key in keys.items()}
    names = [(path.parent.name, entry["name"]) for path, entry in cached.items() if entry]
    if all(cached.values()) and len(set(names)) == len(names):
        stacks = {}
        for entry in cached.values():
            state = _from_entry(entry)
            stacks[state.stack_name] = state
        snapshot = Snapshot(stacks, [format_text(p) for p in problems], code)
    else:
        snapshot = _take_cold(root, lint, store, code, keys, cached)
    _lint_cached(snapshot, lint, store, lint_version(here))
    return snapshot


def _from_entry(entry: dict[str, Any]) -> StackState:
    return StackState(**{k: v for k, v in entry.items() if k in _FIELDS})


_FIELDS = {f for f in StackState.__dataclass_fields__}


def _pool_map(jobs: list[tuple]) -> list[Any]:
    if len(jobs) >= PARALLEL_THRESHOLD and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, len(jobs))) as pool:
            return list(pool.map(_work, jobs, chunksize=max(1, len(jobs) // 16)))
    return [_work(job) for job in jobs]


def _lint_cached(snapshot: Snapshot, lint: Lint, store: Cache, version: str) -> None:
    """Add lint findings to every wanted stack: from the lint cache, else by linting (in parallel)."""
    misses = []
    for state in snapshot.stacks.values():
        if state.text is None or state.errors or not _wants(lint, state.stack_name):
            continue  # no template, or one that failed to render (its error says why)
        found = store.get(lint_key(version, state.region, state.file, state.text))
        if found is not None:
            state.errors = list(found["errors"])
        else:
            misses.append(state)
    if not misses:
        return
    outputs = _pool_map([("lint", s.text, s.region, s.file) for s in misses])
    for state, errors in zip(misses, outputs, strict=True):
        state.errors = list(errors)
        store.put(lint_key(version, state.region, state.file, state.text or ""), {"errors": errors})


def _take_cold(
    root: Path, lint: Lint, store: Cache, code: str, keys: dict[Path, str], cached: dict[Path, Any]
) -> Snapshot:
    result = repository.load(root)
    by_file: dict[Path, list[Diagnostic]] = {}
    problems = []
    for d in result.diagnostics:
        owner = d.via or d.location.file
        if owner in keys:
            by_file.setdefault(owner, []).append(d)
        else:
            problems.append(format_text(d))
    stacks: dict[str, StackState] = {}
    misses = []
    for deployment in result.files:
        relative = str(deployment.path.relative_to(root))
        diagnostics = by_file.get(deployment.path, [])
        state = StackState(
            deployment.environment,
            deployment.name,
            relative,
            deployment.spec.region if deployment.spec else "",
            errors=[format_text(d) for d in diagnostics if d.severity is Severity.ERROR],
            warnings=[format_text(d) for d in diagnostics if d.severity is Severity.WARNING],
        )
        stacks[state.stack_name] = state
        if deployment.spec is None:
            continue
        entry = cached.get(deployment.path)
        if entry:
            state.text, state.errors = entry["text"], list(entry["errors"])
            state.monthly_usd, state.over_budget = entry.get("monthly_usd"), entry.get("over_budget")
            state.monthly_range_usd = entry.get("monthly_range_usd")
        else:
            job = ("render", deployment.spec.model_dump(mode="json"), deployment.environment, state.file)
            misses.append((state, deployment, job))
    if misses:
        outputs = _pool_map([job for _, _, job in misses])
        for (state, deployment, _), output in zip(misses, outputs, strict=True):
            state.text, state.errors, state.monthly_usd, state.over_budget, state.monthly_range_usd = output
            if deployment.path in keys:
                store.put(keys[deployment.path], asdict(state))
    return Snapshot(stacks, problems, code)


def _work(job: tuple) -> Any:
    """One unit of work for a worker process: render a spec, or lint a rendered template."""
    if job[0] == "render":
        return _render_one(job[1:])
    _, text, region, file = job
    return _lint(text, region, file)


def _lint(text: str, region: str, file: str) -> list[str]:
    from tooling import lint  # noqa: PLC0415 - workers import what they use

    rendered = Path("build") / Path(file).parent.name / f"{Path(file).stem}.json"
    return [f"{format_text(f)} (rendered from {file})" for f in lint.lint(text, region, rendered)]


def _render_one(
    job: tuple,
) -> tuple[str | None, list[str], float | None, str | None, list[float] | None]:
    """Build, render and price one deployment (in a worker process: the spec travels as data).

    Stack-builder code that raises is this stack's located error, never an internal error of the run.
    """
    from templates import build, render  # noqa: PLC0415 - workers import what they use
    from tooling import cost  # noqa: PLC0415
    from tooling.spec import Deployment  # noqa: PLC0415

    data, environment, file = job[:3]
    spec = Deployment.model_validate(data)
    try:
        text = render(build(spec, environment))
        estimate = cost.estimate(spec, environment)
        spread = list(estimate.ranges["min"]) if "min" in estimate.ranges else None
        priced = (estimate.monthly_min_usd, cost.over_budget(estimate, spec), spread)
    except Exception as exc:
        return None, [builder_error(file, exc)], None, None, None
    return text, [], *priced


def builder_error(file: str, exc: BaseException) -> str:
    """`file:1:1: error: …` naming where in our code it raised (the innermost frame of ours)."""
    where = ""
    frame = exc.__traceback__
    while frame is not None:
        name = Path(frame.tb_frame.f_code.co_filename)
        if any(part in ("templates", "tooling") for part in name.parts[-3:-1]):
            where = f" at {name.parent.name}/{name.name}:{frame.tb_lineno}"
        frame = frame.tb_next
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return (
        f"{file}:1:1: error: rendering this deployment failed: {type(exc).__name__}"
        f"{': ' + message if message else ''}{where} [RENDER001]"
    )
