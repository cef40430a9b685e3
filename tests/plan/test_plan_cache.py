"""The content-hash cache: an unchanged deployment costs a hash and a read, a changed one is rendered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tooling import snapshot
from tooling.cache import Cache

ROOT = Path(__file__).parents[2]


def test_warm_runs_render_nothing_and_a_change_renders_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments")
    store = Cache(tmp_path / "cache")
    cold = snapshot.take(tmp_path, lint=False, store=store)
    assert all(s.valid for s in cold.stacks.values())

    rendered: list[str] = []
    real = snapshot._render_one

    def counting(job: tuple) -> tuple:
        rendered.append(job[2])
        return real(job)

    monkeypatch.setattr(snapshot, "_render_one", counting)
    monkeypatch.setattr(snapshot, "PARALLEL_THRESHOLD", 10_000)  # in-process, so the counter sees calls
    warm = snapshot.take(tmp_path, lint=False, store=store)
    assert rendered == []
    assert {k: v.text for k, v in warm.stacks.items()} == {k: v.text for k, v in cold.stacks.items()}
    assert warm.stacks["prod-llama-3-1-8b"].monthly_usd == cold.stacks["prod-llama-3-1-8b"].monthly_usd

    path = tmp_path / "deployments/prod/llama-3-1-8b.yaml"
    path.write_text(path.read_text().replace("max: 4", "max: 5"), encoding="utf-8")
    changed = snapshot.take(tmp_path, lint=False, store=store)
    assert rendered == ["deployments/prod/llama-3-1-8b.yaml"]
    assert changed.stacks["prod-llama-3-1-8b"].text != cold.stacks["prod-llama-3-1-8b"].text

    # A defaults file is part of every key under it: changing it renders its environment again.
    defaults = tmp_path / "deployments/prod/_defaults.yaml"
    defaults.write_text(defaults.read_text() + "\n# touched\n", encoding="utf-8")
    rendered.clear()
    snapshot.take(tmp_path, lint=False, store=store)
    assert sorted(rendered) == ["deployments/prod/llama-3-1-8b.yaml", "deployments/prod/multimodal-api.yaml"]


def test_lint_findings_are_cached_with_the_template(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments")
    store = Cache(tmp_path / "cache")
    first = snapshot.take(tmp_path, lint=True, store=store)
    again = snapshot.take(tmp_path, lint=True, store=store)
    assert {k: v.errors for k, v in first.stacks.items()} == {k: v.errors for k, v in again.stacks.items()}
    assert all(not v.errors for v in again.stacks.values())


def test_a_render_made_without_lint_is_reused_and_only_linted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments")
    store = Cache(tmp_path / "cache")
    snapshot.take(tmp_path, lint=False, store=store)  # the base side of a plan renders without lint
    monkeypatch.setattr(snapshot, "PARALLEL_THRESHOLD", 10_000)
    monkeypatch.setattr(snapshot, "_render_one", lambda job: pytest.fail("rendered again"))
    linted: list[str] = []
    real = snapshot._lint
    monkeypatch.setattr(
        snapshot, "_lint", lambda text, region, file: linted.append(file) or real(text, region, file)
    )
    head = snapshot.take(tmp_path, lint=True, store=store)
    assert len(linted) == 4
    assert all(s.valid for s in head.stacks.values())
    snapshot.take(tmp_path, lint=True, store=store)
    assert len(linted) == 4  # and then it is all cached


def test_the_lint_key_is_cfn_lints_version_and_our_rules(tmp_path: Path) -> None:
    """Issue 14 #12: a template linted before is skipped only under the same cfn-lint and rules."""

    def tree(name: str, rules: dict[str, str]) -> Path:
        root = tmp_path / name
        (root / "tooling").mkdir(parents=True)
        (root / "tooling/lint.py").write_text("# the runner\n")
        for file, text in rules.items():
            (root / "tooling/cfn_rules").mkdir(exist_ok=True)
            (root / "tooling/cfn_rules" / file).write_text(text)
        return root

    bare, same = snapshot.lint_version(tree("a", {})), snapshot.lint_version(tree("b", {}))
    one = snapshot.lint_version(tree("c", {"e9001.py": "class Rule: id = 'E9001'\n"}))
    edited = snapshot.lint_version(tree("d", {"e9001.py": "class Rule: id = 'E9001'  # stricter\n"}))
    assert bare == same
    assert len({bare, one, edited}) == 3


def test_a_code_change_that_keeps_a_template_keeps_its_lint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments")
    store = Cache(tmp_path / "cache")
    snapshot.take(tmp_path, lint=True, store=store)
    monkeypatch.setattr(snapshot, "PARALLEL_THRESHOLD", 10_000)
    monkeypatch.setattr(snapshot, "_lint", lambda text, region, file: pytest.fail(f"linted {file} again"))
    # Other template code (another code version): rendered again, but the same text needs no lint.
    again = snapshot.take(tmp_path, lint=True, store=store, code="another code version")
    assert all(s.valid for s in again.stacks.values())
