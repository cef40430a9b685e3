"""The `deployments/` tree: which files are deployments, their environments, and their layered defaults.

    deployments/_defaults.yaml           under every deployment (optional)
    deployments/<env>/_defaults.yaml     under every deployment of <env> (optional)
    deployments/<env>/<name>.yaml        one deployment; it wins over both

Like sceptre's config inheritance, a value may come from any layer, and its diagnostics point at the
layer that wrote it.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tooling.diagnostics import Diagnostic, Location, Severity, unique_sorted
from tooling.source import Source, SourceError, load_yaml, merge
from tooling.spec import Deployment
from tooling.validation import validate

DEPLOYMENTS_DIR = "deployments"
DEFAULTS_FILE = "_defaults.yaml"
SUFFIXES = (".yaml", ".yml")
ENVIRONMENT = re.compile(r"[a-z][a-z0-9-]*")


def prefix_clash(name: str, others: Iterable[str]) -> str | None:
    """Another environment whose name followed by '-' starts `name` (prod and prod-eu), or None.

    Every per-environment grant is a name pattern: stacks `<env>-*`, secrets `deployctl/<env>/*`,
    functions `<env>-*`, templates `templates/deploy/<env>-*` (templates/bootstrap.py). prod's patterns
    would match prod-eu's resources, so prod's roles would drive prod-eu's stacks.
    """
    return next((o for o in sorted(others) if o != name and name.startswith(f"{o}-")), None)


NAME = re.compile(r"[a-z][a-z0-9-]{2,31}")


@dataclass
class DeploymentFile:
    environment: str
    path: Path
    spec: Deployment | None = None
    source: Source | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.path.stem

    @property
    def stack_name(self) -> str:
        return f"{self.environment}-{self.name}"

    @property
    def valid(self) -> bool:
        return self.spec is not None


@dataclass
class Deployments:
    """Every deployment file that was asked for, validated, with all diagnostics."""

    root: Path
    files: list[DeploymentFile]
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    @property
    def valid(self) -> list[DeploymentFile]:
        return [f for f in self.files if f.valid]


# deployments/environments.yaml (tooling/accounts/environments.py) declares accounts, not a deployment.
ENVIRONMENTS_FILE = "environments.yaml"


def _is_deployment_file(path: Path) -> bool:
    if path.name == ENVIRONMENTS_FILE and path.parent.name == DEPLOYMENTS_DIR:
        return False
    return path.suffix in SUFFIXES and path.name != DEFAULTS_FILE and not path.name.startswith(".")


def _problem(file: Path, message: str, code: str, hint: str = "") -> Diagnostic:
    return Diagnostic(Location(file), "", message, code, hint=hint)


class _Layers:
    """Loads each `_defaults.yaml` once, however many deployments merge it."""

    def __init__(self, base: Path):
        self.base = base
        self.cache: dict[Path, Source | None] = {}
        self.diagnostics: list[Diagnostic] = []

    def load(self, path: Path) -> Source | None:
        if path not in self.cache:
            source = None
            if path.is_file():
                try:
                    source = load_yaml(path)
                except SourceError as exc:
                    self.diagnostics.extend(exc.diagnostics)
                else:
                    if not isinstance(source.data, dict):
                        self.diagnostics.append(
                            _problem(path, "a defaults file is a mapping of spec fields", "SPEC001")
                        )
                        source = None
            self.cache[path] = source
        return self.cache[path]

    def merged(self, environment: str, own: Source) -> Source:
        result = None
        for layer in defaults_files(self.base.parent, environment):
            source = self.load(layer)
            if source is not None:
                result = source if result is None else merge(result, source)
        return own if result is None else merge(result, own)


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder upwards that has `deployments/` (else the start)."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / DEPLOYMENTS_DIR).is_dir():
            return folder
    return start


def discover(root: Path, paths: Sequence[Path] = ()) -> tuple[dict[str, list[Path]], list[Diagnostic]]:
    """The deployment files under `paths` by environment, and the files that are misplaced."""
    base = (root / DEPLOYMENTS_DIR).resolve()
    problems: list[Diagnostic] = []
    environments: dict[str, list[Path]] = defaultdict(list)
    if not base.is_dir():
        problems.append(_problem(root / DEPLOYMENTS_DIR, "no deployments/ folder here", "REPO001"))
        return environments, problems
    for path in _select(base, paths, problems):
        env = _environment(base, path, problems)
        if env is not None:
            environments[env].append(path)
    # Plans, deploys and prunes stop on these problems (Snapshot.problems): nothing is touched.
    folders = sorted(p.name for p in base.iterdir() if p.is_dir() and ENVIRONMENT.fullmatch(p.name))
    for env in sorted(environments):
        if clash := prefix_clash(env, folders):
            for path in environments.pop(env):
                problems.append(
                    _problem(
                        path,
                        f"environment '{env}' starts with environment '{clash}' and '-': every "
                        f"permission of {clash}'s roles ({clash}-* stacks, deployctl/{clash}/* secrets) "
                        f"would also reach {env}'s resources",
                        "REPO005",
                        f"rename the folder so that no environment name is another's followed by '-' "
                        f"(for example '{env.replace('-', '', 1)}')",
                    )
                )
    return environments, problems


def defaults_files(root: Path, environment: str) -> list[Path]:
    """The `_defaults.yaml` layers under an environment's files, outermost first."""
    base = (root / DEPLOYMENTS_DIR).resolve()
    return [base / DEFAULTS_FILE, base / environment / DEFAULTS_FILE]


def load(root: Path, paths: Sequence[Path] = ()) -> Deployments:
    """Discover, merge and validate the deployments under `paths` (default: all of `deployments/`)."""
    base = (root / DEPLOYMENTS_DIR).resolve()
    environments, problems = discover(root, paths)
    if not base.is_dir():
        return Deployments(root, [], problems)

    layers = _Layers(base)
    files: list[DeploymentFile] = []
    for env in sorted(environments):
        # Names are unique per environment, so the siblings of a selected file are loaded too.
        siblings = sorted(p for p in _walk(base / env, []) if p.parent == base / env)
        loaded = [_load_one(env, path, layers) for path in siblings]
        problems.extend(_duplicate_names(loaded))
        chosen = {p.resolve() for p in environments[env]}
        files.extend(f for f in loaded if f.path in chosen)

    problems.extend(regional_quotas(files))
    wanted = {f.path for f in files}
    for f in files:
        problems.extend(f.diagnostics)
    problems.extend(layers.diagnostics)
    # Diagnostics about unselected siblings are not this run's business, except duplicate names.
    problems = [d for d in problems if d.location.file in wanted or d.via in wanted or d.code != "SPEC220"]
    return Deployments(root, files, unique_sorted(problems))


def _select(base: Path, paths: Sequence[Path], problems: list[Diagnostic]) -> Iterable[Path]:
    if not paths:
        paths = [base]
    seen: set[Path] = set()
    for raw in paths:
        if raw.is_symlink():
            problems.append(_symlink(raw))
            continue
        path = raw.resolve()
        if path.is_dir():
            found = _walk(path, problems)
        elif path.is_file():
            found = [path]
        else:
            problems.append(_problem(raw, "no such file or folder", "REPO002"))
            continue
        for item in found:
            if item not in seen and item.name != DEFAULTS_FILE:
                seen.add(item)
                yield item


def _symlink(path: Path) -> Diagnostic:
    # A link makes one file two stacks' source, or points outside deployments/: what it deploys and
    # what owns the stack would depend on where it points. A dangling one would hide a live stack.
    target = os.readlink(path)
    state = "a dangling symlink" if not path.exists() else "a symlink"
    return _problem(
        path,
        f"{state} (to {target}); deployment files and folders are not links",
        "REPO006",
        "copy the file into deployments/<environment>/ instead",
    )


def _walk(folder: Path, problems: list[Diagnostic]) -> list[Path]:
    """Deployment files below `folder`; an unreadable folder or a symlink is a problem, never skipped."""

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        problems.append(
            _problem(where, f"cannot read this folder: {exc.strerror or exc}", "REPO005",
                     "make it readable: its deployments cannot be planned, deployed or pruned")
        )  # fmt: skip

    found = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():
                problems.append(_symlink(here / name))
                dirnames.remove(name)
        for name in filenames:
            path = here / name
            if not _is_deployment_file(path):
                continue
            if path.is_symlink():
                problems.append(_symlink(path))
            elif path.is_file():
                found.append(path)
    return sorted(found)


def _environment(base: Path, path: Path, problems: list[Diagnostic]) -> str | None:
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        problems.append(
            _problem(
                path,
                "not under deployments/",
                "REPO003",
                "deployment files live in deployments/<environment>/",
            )
        )
        return None
    if path.suffix not in SUFFIXES:
        problems.append(_problem(path, "not a YAML file", "REPO003", "deployment files end in .yaml"))
        return None
    if len(parts) != 2:
        problems.append(
            _problem(
                path,
                "a deployment file belongs directly in an environment folder",
                "REPO003",
                "deployments/<environment>/<name>.yaml",
            )
        )
        return None
    if not ENVIRONMENT.fullmatch(parts[0]):
        problems.append(
            _problem(
                path,
                f"'{parts[0]}' is not an environment name",
                "REPO004",
                "lowercase letters, digits and '-', starting with a letter",
            )
        )
        return None
    return parts[0]


def _load_one(environment: str, path: Path, layers: _Layers) -> DeploymentFile:
    result = DeploymentFile(environment, path)
    try:
        own = load_yaml(path)
    except SourceError as exc:
        result.diagnostics = exc.diagnostics
        return result
    if not isinstance(own.data, dict):
        result.diagnostics = [
            Diagnostic(
                own.locate(()) or Location(path),
                "",
                "a deployment file is a mapping of spec fields",
                "SPEC001",
            )
        ]
        return result
    result.source = layers.merged(environment, own)
    validated = validate(result.source, environment, path)
    result.spec = validated.spec
    result.diagnostics = validated.diagnostics
    name = result.source.data.get("name")
    if isinstance(name, str) and NAME.fullmatch(name) and name != path.stem:
        result.diagnostics.append(
            Diagnostic(
                result.source.locate(("name",)) or Location(path),
                "name",
                f"name '{name}' differs from the file name '{path.stem}'",
                "SPEC221",
                Severity.WARNING,
                f"rename the file to {name}{path.suffix}, or the name to {path.stem}",
            )
        )
    return result


def _duplicate_names(files: list[DeploymentFile]) -> list[Diagnostic]:
    by_name: dict[str, list[DeploymentFile]] = defaultdict(list)
    for f in files:
        if f.source is not None and isinstance(f.source.data.get("name"), str):
            by_name[f.source.data["name"]].append(f)
    problems = []
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        for f in group:
            others = ", ".join(o.path.name for o in group if o is not f)
            problems.append(
                Diagnostic(
                    f.source.locate(("name",)) or Location(f.path),  # type: ignore[union-attr]
                    "name",
                    f"name '{name}' is also used by {others} in {f.environment}",
                    "SPEC220",
                    hint="names are unique per environment: each is its own stack",
                    via=f.path,
                )
            )
            f.spec = None  # two files cannot both own the stack
    return problems


# Regional quotas that several deployments of one environment (one account) share: each deployment
# has its own load balancer, and with `network.vpc: new` its own VPC (and internet gateway) and one
# Elastic IP per NAT gateway. Defaults from https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html
# and https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html;
# they can be raised, hence warnings, on each deployment past the default.
REGIONAL_QUOTAS = (
    ("SPEC242", "VPCs per Region", "L-F678F1CE", 5, lambda s: 1 if s.network.vpc == "new" else 0),
    ("SPEC243", "EC2-VPC Elastic IPs", "L-0263D0A3", 5,
     lambda s: s.network.nat_gateways if s.network.vpc == "new" else 0),
    ("SPEC244", "Application Load Balancers per Region", "L-53DA6B97", 50, lambda s: 1),
)  # fmt: skip


def regional_quotas(files: list[DeploymentFile]) -> list[Diagnostic]:
    found = []
    groups: dict[tuple[str, str], list[DeploymentFile]] = defaultdict(list)
    for f in files:
        if f.spec is not None:
            groups[(f.environment, f.spec.region)].append(f)
    for (environment, region), group in sorted(groups.items()):
        for code, name, quota_code, quota, uses in REGIONAL_QUOTAS:
            total = 0
            for f in sorted(group, key=lambda f: str(f.path)):
                total += uses(f.spec)
                if total > quota and uses(f.spec):
                    found.append(
                        Diagnostic(
                            (f.source.locate(("network",)) if f.source else None) or Location(f.path),
                            "network",
                            f"{environment} in {region} would need {total} of '{name}' ({quota_code}, "
                            f"{quota} by default) with this deployment",
                            code,
                            Severity.WARNING,
                            "raise the quota before deploying, or share a VPC (network.vpc: vpc-…)",
                        )
                    )
    return found
