"""Making a plan: the working tree's snapshot against a git revision's, or against AWS change sets."""

from __future__ import annotations

from pathlib import Path

from tooling import gitbase
from tooling.cache import Cache
from tooling.plan import Plan, offline
from tooling.snapshot import Snapshot, StackState


def head_snapshot(root: Path, store: Cache, *, lint: bool = True) -> Snapshot:
    """The checkout at `root`, rendered by its own code: a `--root` checkout whose templates differ
    from the installed ones renders with its own, as a git base does."""
    return gitbase.own_snapshot(root, store, lint=lint, label=str(root))


def plan_against_git(
    root: Path,
    ref: str | None,
    store: Cache,
    *,
    head: Snapshot | None = None,
    repository: str = "",
    image_tags: dict[str, str] | None = None,
) -> Plan:
    commit = gitbase.resolve(root, ref)
    # Every head template is linted; the lint cache (keyed on cfn-lint's version and our rules) makes
    # a template linted before cost a read, whichever revision rendered it.
    head = head if head is not None else head_snapshot(root, store, lint=True)
    base = gitbase.snapshot_at(root, commit, store)
    label = (
        f"git:{commit[:12]} (merge base with {_base_branch(root)})"
        if not ref
        else f"git:{ref} ({commit[:12]})"
    )
    return offline(
        head, base, label, repository=repository, image_tags=image_tags, defaults=checkout_tags(root, head)
    )


def checkout_tags(root: Path, head: Snapshot) -> dict[str, dict[str, str]]:
    """Per stack, the image tags of the checkout: what deploy sets where it cannot keep a stack's own."""
    from tooling.release import images  # noqa: PLC0415

    return images.checkout_tags(root, head.stacks.values())


def _base_branch(root: Path) -> str:
    return next(b for b in gitbase.BASE_BRANCHES if gitbase._commit(root, b))


def plan_against_aws(
    root: Path, store: Cache, *, image_tag: dict[str, str] | None, paths: tuple[Path, ...] = (),
    repository: str = "",
) -> Plan:  # fmt: skip
    from tooling import changesets  # noqa: PLC0415 - boto3 loads only for AWS plans
    from tooling.accounts import environments  # noqa: PLC0415

    head = head_snapshot(root, store, lint=True)
    chosen = chosen_stacks(head, root, paths)
    loaded = environments.load(root)
    # Change sets only for what was asked: the plan of one environment touches no other one.
    return changesets.plan(
        head,
        image_tag=image_tag,
        only=chosen,
        repository=repository,
        environments=loaded.config if loaded else None,
        defaults=checkout_tags(root, head),
    )


def chosen_stacks(head: Snapshot, root: Path, paths: tuple[Path, ...]) -> set[str]:
    return {s.stack_name for s in select(offline_all(head), root, paths).stacks}


def select(plan: Plan, root: Path, paths: tuple[Path, ...]) -> Plan:
    """Only the stacks whose files are under `paths` (all when none are given)."""
    if not paths:
        return plan
    wanted = [p.resolve() for p in paths]
    base = (root / "deployments").resolve()

    def chosen(environment: str, name: str, file: str) -> bool:
        candidates = [base / environment / f"{name}{suffix}" for suffix in (".yaml", ".yml")]
        if file:
            candidates.append(root / file)
        return any(c == w or c.is_relative_to(w) for c in candidates for w in wanted)

    plan.stacks = [s for s in plan.stacks if chosen(s.environment, s.name, s.file)]
    return plan


def environments_of(root: Path, paths: tuple[Path, ...]) -> set[str] | None:
    """The environments `paths` name (None: all of them)."""
    if not paths:
        return None
    base = (root / "deployments").resolve()
    found = set()
    for path in paths:
        parts = path.resolve().relative_to(base).parts
        if parts:
            found.add(parts[0])
        else:
            return None
    return found


def offline_all(head: Snapshot, *, repository: str = "", image_tags: dict[str, str] | None = None) -> Plan:
    """Every stack of `head` as if nothing were deployed (used to select stacks by path)."""
    return offline(head, Snapshot({}), "none", repository=repository, image_tags=image_tags)


def states(head: Snapshot, names: set[str]) -> list[StackState]:
    return [head.stacks[n] for n in sorted(names)]
