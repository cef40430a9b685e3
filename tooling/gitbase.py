"""The deployments of a git revision, rendered by that revision's own code, for offline plans.

What was merged is what is deployed, so the base of an offline plan is the merge base with `main`
(falling back to HEAD), rendered by the templates of that revision: a change to a stack builder shows
in the plan exactly like a change to a YAML file.
"""

from __future__ import annotations

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
_PROGRAM = """
import json, sys
from pathlib import Path
from tooling.cache import Cache
from tooling.snapshot import take
store = Cache(Path(sys.argv[2]) if sys.argv[2] else None)
print(json.dumps(take(Path(sys.argv[1]), lint=False, store=store).to_json()))
"""


class GitError(Exception):
    pass


def git(root: Path, *args: str, binary: bool = False) -> str | bytes:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False, timeout=120)  # noqa: S607
    if done.returncode != 0:
        raise GitError(done.stderr.decode(errors="replace").strip() or f"git {' '.join(args)} failed")
    return done.stdout if binary else done.stdout.decode().strip()


def resolve(root: Path, ref: str | None) -> str:
    """`ref` as a commit; by default the merge base with main (or origin/main), else HEAD."""
    if ref:
        return str(git(root, "rev-parse", "--verify", f"{ref}^{{commit}}"))
    for main in ("origin/main", "main"):
        try:
            return str(git(root, "merge-base", "HEAD", main))
        except GitError:
            continue
    return str(git(root, "rev-parse", "--verify", "HEAD^{commit}"))


def snapshot_at(root: Path, commit: str, store: Cache) -> Snapshot:
    listed = str(git(root, "ls-tree", "--name-only", commit, *PATHS)).split()
    if "deployments" not in listed:
        return Snapshot({})
    with tempfile.TemporaryDirectory(prefix="deployctl-base-") as folder:
        tree = Path(folder)
        archive = git(root, "archive", "--format=tar", commit, *listed, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:  # type: ignore[arg-type]
            tar.extractall(tree, filter="data")
        here = Path(__file__).resolve().parents[1]
        has_code = (tree / "tooling" / "snapshot.py").is_file() and (tree / "templates").is_dir()
        if not has_code or code_version(tree) == code_version(here):
            # Same code (or a revision from before it could render itself): render in this process.
            return take(tree, lint=False, store=store)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run(
            [sys.executable, "-c", _PROGRAM, str(tree), str(store.folder or "")],
            cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise GitError(f"rendering {commit[:12]} with its own code failed: {done.stderr.strip()[-2000:]}")
        return Snapshot.from_json(json.loads(done.stdout))


def files_at(root: Path, commit: str) -> set[str]:
    return set(str(git(root, "ls-tree", "-r", "--name-only", commit, "deployments")).split())
