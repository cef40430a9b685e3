"""The deployments of a git revision, rendered by that revision's own code, for offline plans.

What was merged is what is deployed, so the base of an offline plan is the merge base with `main`
(origin/main first), rendered by the templates of that revision: a change to a stack builder shows in
the plan exactly like a change to a YAML file. A base is never guessed: a shallow clone is deepened
(or the error names the command that fetches the base), a missing `main` is an error naming
`--against`, and a base whose code cannot render is an error, never "everything is new".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tooling.cache import Cache
from tooling.snapshot import Snapshot, code_version, take

PATHS = ("deployments", "templates", "tooling", "pyproject.toml")
BASE_BRANCHES = ("origin/main", "main")
DEEPEN_STEPS = (50, 500)
_PROGRAM = """
import json, sys
from pathlib import Path
from tooling.cache import Cache
from tooling.snapshot import take
store = Cache(Path(sys.argv[2]) if sys.argv[2] else None)
lint = sys.argv[3] == "1" if len(sys.argv) > 3 else False
print(json.dumps(take(Path(sys.argv[1]), lint=lint, store=store).to_json()))
"""


class GitError(Exception):
    pass


class NotARepository(GitError):
    """No git checkout at all (a tarball, a copied folder): the only case a plan may say "all new"."""


def git(root: Path, *args: str, binary: bool = False) -> str | bytes:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False, timeout=300)  # noqa: S607
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"git {' '.join(args)} failed"
        if "not a git repository" in message:
            raise NotARepository(message)
        raise GitError(message)
    return done.stdout if binary else done.stdout.decode().strip()


def is_shallow(root: Path) -> bool:
    return str(git(root, "rev-parse", "--is-shallow-repository")) == "true"


def _has_origin(root: Path) -> bool:
    try:
        git(root, "remote", "get-url", "origin")
    except GitError:
        return False
    return True


def _commit(root: Path, ref: str) -> str | None:
    try:
        return str(git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"))
    except GitError:
        return None


def resolve(root: Path, ref: str | None) -> str:
    """`ref` as a commit; by default the merge base of HEAD with origin/main (else main).

    Raises GitError with what to do: never falls back to HEAD, whose plan would say "no changes".
    """
    git(root, "rev-parse", "--git-dir")  # NotARepository when there is no checkout
    if ref:
        commit = _commit(root, ref)
        if commit is None and is_shallow(root) and _has_origin(root):
            _fetch(root, ref)
            commit = _commit(root, ref)
        if commit is None:
            hint = f"; fetch it: git fetch --no-tags origin {ref}" if _has_origin(root) else ""
            raise GitError(f"--against git:{ref}: no such commit in this checkout{hint}")
        return commit
    branch = next((b for b in BASE_BRANCHES if _commit(root, b)), None)
    if branch is None:
        raise GitError(
            "no base branch: neither origin/main nor main exists here; "
            "name the base with --against git:REF (e.g. --against git:origin/master)"
        )
    base = _merge_base(root, branch)
    if base is None and is_shallow(root) and _has_origin(root):
        for depth in DEEPEN_STEPS:
            # CI checkouts are shallow: fetch more history of both sides until they meet.
            _fetch(root, "HEAD", f"--deepen={depth}")
            _fetch(root, "+refs/heads/main:refs/remotes/origin/main", f"--deepen={depth}")
            if (base := _merge_base(root, branch)) is not None:
                break
    if base is None:
        if is_shallow(root):
            raise GitError(
                f"this clone is shallow and HEAD's merge base with {branch} is not in it; run "
                "`git fetch --no-tags --unshallow origin +refs/heads/main:refs/remotes/origin/main` "
                "(or check out with fetch-depth: 0), or name the base with --against git:REF"
            )
        raise GitError(f"HEAD and {branch} share no history; name the base with --against git:REF")
    return base


def _merge_base(root: Path, branch: str) -> str | None:
    try:
        return str(git(root, "merge-base", "HEAD", branch)) or None
    except GitError:
        return None


def _fetch(root: Path, refspec: str, *options: str) -> None:
    # The caller checks what it needed and names the command to run when it is still missing.
    with contextlib.suppress(GitError):
        git(root, "fetch", "--no-tags", "--quiet", *options, "origin", refspec)


def head_commit(root: Path) -> str | None:
    """The checkout's HEAD commit, or None outside git."""
    try:
        return str(git(root, "rev-parse", "--verify", "HEAD^{commit}"))
    except GitError:
        return None


def is_ancestor(root: Path, older: str, newer: str) -> bool | None:
    """Whether `older` is an ancestor of (or equal to) `newer`; None when this clone cannot tell (the
    commit is missing, or a shallow history ends before the two meet)."""
    if _commit(root, older) is None:
        if is_shallow(root) and _has_origin(root):
            _fetch(root, older)
        if _commit(root, older) is None:
            return None
    for depth in (0, *DEEPEN_STEPS):
        if depth:
            _fetch(root, "HEAD", f"--deepen={depth}")
        done = subprocess.run(
            ["git", "merge-base", "--is-ancestor", older, newer],  # noqa: S607
            cwd=root, capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode == 0:
            return True
        if done.returncode != 1:
            raise GitError(done.stderr.decode(errors="replace").strip())
        if not (is_shallow(root) and _has_origin(root)):
            return False
    return None if is_shallow(root) else False


def extract(archive: bytes, folder: Path) -> None:
    """Unpack a `git archive` tar, refusing members that would land outside `folder`.

    tarfile's `filter=` argument exists from Python 3.11.4/3.12 only (Debian 12 ships 3.11.2): use the
    "data" filter where it exists, else check every member ourselves.
    """
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
            return
        top = folder.resolve()
        for member in tar.getmembers():
            target = (top / member.name).resolve()
            if not target.is_relative_to(top) or member.isdev():
                raise GitError(f"refusing archive member {member.name!r}: outside the checkout")
            if (member.issym() or member.islnk()) and not (
                target.parent / member.linkname
            ).resolve().is_relative_to(top):
                raise GitError(f"refusing archive link {member.name!r}: it points outside the checkout")
        tar.extractall(folder)  # noqa: S202 - every member was checked above


def snapshot_at(root: Path, commit: str, store: Cache) -> Snapshot:
    listed = str(git(root, "ls-tree", "--name-only", commit, *PATHS)).split()
    if "deployments" not in listed:
        return Snapshot({})
    with tempfile.TemporaryDirectory(prefix="deployctl-base-") as folder:
        tree = Path(folder)
        extract(bytes(git(root, "archive", "--format=tar", commit, *listed, binary=True)), tree)
        return own_snapshot(tree, store, lint=False, label=commit[:12])


def own_snapshot(tree: Path, store: Cache, *, lint: bool, label: str) -> Snapshot:
    """`tree`'s deployments rendered by `tree`'s own code (this process when the code is the same)."""
    here = Path(__file__).resolve().parents[1]
    has_code = (tree / "tooling" / "snapshot.py").is_file() and (tree / "templates").is_dir()
    if not has_code or tree.resolve() == here or code_version(tree) == code_version(here):
        # Same code (or a tree from before it could render itself): render in this process.
        return take(tree, lint=lint, store=store)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tree), str(store.folder or ""), "1" if lint else "0"],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:500]
        raise GitError(f"rendering {label} with its own code failed: {last}")
    return Snapshot.from_json(json.loads(done.stdout))


def files_at(root: Path, commit: str) -> set[str]:
    return set(str(git(root, "ls-tree", "-r", "--name-only", commit, "deployments")).split())
