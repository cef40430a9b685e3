"""Making a plan: the working tree's snapshot against a git revision's, or against AWS change sets."""

from __future__ import annotations

from pathlib import Path

from tooling import gitbase
from tooling.cache import Cache
from tooling.plan import Plan, offline
from tooling.snapshot import Snapshot, take


def plan_against_git(root: Path, ref: str | None, store: Cache) -> Plan:
    commit = gitbase.resolve(root, ref)
    head = take(root, lint=False, store=store)
    base = gitbase.snapshot_at(root, commit, store)
    # Lint only what changed: a template equal to the base's was linted when the base was planned.
    changed = {
        name for name, s in head.stacks.items()
        if s.text is not None and (name not in base.stacks or base.stacks[name].text != s.text)
    }  # fmt: skip
    head = take(root, lint=changed, store=store)
    label = ref or "merge base with main"
    return offline(head, base, f"git:{commit[:12]} ({label})" if not ref else f"git:{ref} ({commit[:12]})")


def plan_against_aws(root: Path, store: Cache, *, image_tag: dict[str, str] | None) -> Plan:
    from tooling import changesets  # noqa: PLC0415 - boto3 loads only for AWS plans
    from tooling.accounts import environments  # noqa: PLC0415

    head = take(root, lint=True, store=store)
    loaded = environments.load(root)
    return changesets.plan(head, image_tag=image_tag, environments=loaded.config if loaded else None)


def select(plan: Plan, root: Path, paths: tuple[Path, ...]) -> Plan:
    """Only the stacks whose files are under `paths` (all when none are given)."""
    if not paths:
        return plan
    wanted = [p.resolve() for p in paths]
    base = (root / "deployments").resolve()

    def chosen(environment: str, name: str) -> bool:
        candidates = [base / environment / f"{name}{suffix}" for suffix in (".yaml", ".yml")]
        return any(c == w or c.is_relative_to(w) for c in candidates for w in wanted)

    plan.stacks = [s for s in plan.stacks if chosen(s.environment, s.name)]
    return plan


def offline_all(head: Snapshot) -> Plan:
    """Every stack of `head` as if nothing were deployed (used to select stacks by path)."""
    return offline(head, Snapshot({}), "none")
