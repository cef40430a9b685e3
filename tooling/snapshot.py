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
        stacks = {k: StackState(**v) for k, v in data["stacks"].items()}
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
        return b""


Lint = bool | Collection[str]  # every stack, none, or the stacks named


def _wants(lint: Lint, stack_name: str) -> bool:
    return lint is True or (not isinstance(lint, bool) and stack_name in lint)


def take(root: Path, *, lint: Lint = True, store: Cache | None = None, code: str | None = None) -> Snapshot:
    """Every deployment under `root`, as stacks; linted when `lint` names them (True: all).

    `code` names the code version (default: this code).
    """
    store = store or Cache(None)
    root = root.resolve()
    code = code or code_version(Path(__file__).resolve().parents[1])
    environments, problems = repository.discover(root)
    keys: dict[Path, str] = {}
    for env, paths in environments.items():
        layers = b"".join(_read(p) for p in repository.defaults_files(root, env))
        for path in paths:
            relative = str(path.relative_to(root))
            # Linted or not, a render is the same: the base side of a plan reuses the head's renders.
            keys[path] = digest(code, env, relative, path.read_bytes(), layers)
    cached = {path: store.get(key) for path, key in keys.items()}
    names = [(path.parent.name, entry["name"]) for path, entry in cached.items() if entry]
    complete = all(
        entry and (entry["linted"] or not _wants(lint, f"{path.parent.name}-{entry['name']}"))
        for path, entry in cached.items()
    )
    if complete and len(set(names)) == len(names):
        stacks = {}
        for entry in cached.values():
            state = _from_entry(entry, lint)
            stacks[state.stack_name] = state
        return Snapshot(stacks, [format_text(p) for p in problems], code)
    return _take_cold(root, lint, store, code, keys, cached)


def _from_entry(entry: dict[str, Any], lint: Lint) -> StackState:
    state = StackState(**{k: v for k, v in entry.items() if k != "linted"})
    if not _wants(lint, state.stack_name):
        state.errors = []  # cached errors are lint findings (only valid specs are rendered)
    return state


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
        wanted = _wants(lint, state.stack_name)
        if entry:
            state.text, state.errors = entry["text"], entry["errors"] if wanted else []
            state.monthly_usd, state.over_budget = entry.get("monthly_usd"), entry.get("over_budget")
            if wanted and not entry["linted"]:
                misses.append((state, deployment, ("lint", state.text, deployment.spec.region, state.file)))
        else:
            job = (
                "render",
                deployment.spec.model_dump(mode="json"),
                deployment.environment,
                state.file,
                wanted,
            )
            misses.append((state, deployment, job))
    if misses:
        jobs = [job for _, _, job in misses]
        if len(jobs) >= PARALLEL_THRESHOLD and (os.cpu_count() or 1) > 1:
            with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, len(jobs))) as pool:
                outputs = list(pool.map(_work, jobs, chunksize=max(1, len(jobs) // 16)))
        else:
            outputs = [_work(job) for job in jobs]
        for (state, deployment, job), output in zip(misses, outputs, strict=True):
            if job[0] == "render":
                state.text, state.errors, state.monthly_usd, state.over_budget = output
                linted = job[-1]
            else:
                state.errors, linted = output, True
            store.put(keys[deployment.path], {**asdict(state), "linted": linted})
    return Snapshot(stacks, problems, code)


def _work(job: tuple) -> Any:
    """One unit of work for a worker process: render (and maybe lint) a spec, or lint a cached render."""
    if job[0] == "render":
        return _render_one(job[1:])
    _, text, region, file = job
    return _lint(text, region, file)


def _lint(text: str, region: str, file: str) -> list[str]:
    from tooling import lint  # noqa: PLC0415 - workers import what they use

    rendered = Path("build") / Path(file).parent.name / f"{Path(file).stem}.json"
    return [f"{format_text(f)} (rendered from {file})" for f in lint.lint(text, region, rendered)]


def _render_one(job: tuple[dict[str, Any], str, str, bool]) -> tuple[str, list[str], float, str | None]:
    """Build, render, lint and price one deployment (in a worker process: the spec travels as data)."""
    from templates import build, render  # noqa: PLC0415 - workers import what they use
    from tooling import cost  # noqa: PLC0415
    from tooling.spec import Deployment  # noqa: PLC0415

    data, environment, file, with_lint = job
    spec = Deployment.model_validate(data)
    text = render(build(spec, environment))
    estimate = cost.estimate(spec, environment)
    priced = (estimate.monthly_min_usd, cost.over_budget(estimate, spec))
    return text, _lint(text, spec.region, file) if with_lint else [], *priced
