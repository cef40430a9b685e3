"""The corpus of broken files: each states, in `# expect:` lines, every diagnostic it must produce.

Each expectation is its own test (file, line, column, field, code and message), and each file is also
checked for diagnostics nobody expected, so a rule that fires too widely fails as surely as one that
does not fire.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tooling import repository
from tooling.diagnostics import Diagnostic

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(p for p in (CORPUS / "deployments").rglob("*.yaml"))
EXPECT = re.compile(r'^# expect: (error|warning) (\d+):(\d+) (\S+) ([A-Z]+\d{3}) "(.*)"$')


def expectations(path: Path) -> list[tuple[str, int, int, str, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := EXPECT.match(line):
            severity, row, col, field, code, text = match.groups()
            found.append((severity, int(row), int(col), "" if field == "-" else field, code, text))
    return found


CASES = [(path, e) for path in FILES for e in expectations(path)]


def diagnostics_of(path: Path) -> list[Diagnostic]:
    result = repository.load(CORPUS, [path])
    return [d for d in result.diagnostics if d.location.file == path.resolve()]


def key(d: Diagnostic) -> tuple[str, int, int, str, str]:
    return (str(d.severity), d.location.line, d.location.col, d.field, d.code)


@pytest.mark.parametrize(
    ("path", "expected"),
    CASES,
    ids=[f"{p.parent.name}/{p.name}:{e[4]}@{e[1]}:{e[2]}" for p, e in CASES],
)
def test_expected_diagnostic(path: Path, expected: tuple) -> None:
    severity, line, col, field, code, text = expected
    matches = [d for d in diagnostics_of(path) if key(d) == (severity, line, col, field, code)]
    assert matches, (
        f"no {severity} {code} at {line}:{col} on {field!r}; got {[key(d) for d in diagnostics_of(path)]}"
    )
    assert any(text in f"{d.message} ({d.hint})" for d in matches), [d.message for d in matches]


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_nothing_unexpected(path: Path) -> None:
    expected = {e[:5] for e in expectations(path)}
    assert expected, f"{path.name} states no expectation"
    got = {key(d) for d in diagnostics_of(path)}
    assert got == expected


def test_corpus_files_are_never_valid() -> None:
    for path in FILES:
        result = repository.load(CORPUS, [path])
        has_error = any(e[0] == "error" for e in expectations(path))
        assert bool(result.valid) != has_error, path.name


def test_every_rule_has_a_corpus_case() -> None:
    """One test per rule: every code the validator can emit is exercised by a file here or named below."""
    sources = "\n".join(p.read_text() for p in (Path(__file__).parents[2] / "tooling").glob("*.py"))
    codes = set(re.findall(r'"((?:SPEC|YAML|REPO)\d{3})"', sources))
    covered = {e[4] for _, e in CASES}
    # Exercised by dedicated tests that need more than one file or a non-text file.
    elsewhere = {
        "SPEC220": "test_spec_repository.py::test_names_are_unique_per_environment",
        "YAML002": "test_spec_repository.py::test_binary_file_is_reported_not_raised",
        "REPO001": "test_spec_repository.py::test_missing_deployments_folder",
        "REPO002": "test_spec_repository.py::test_missing_path",
        "REPO003": "test_spec_repository.py::test_misplaced_files",
        "REPO004": "test_spec_repository.py::test_misplaced_files",
        # Needs a price table that read a region in full; the committed one reads none in part only.
        "SPEC240": "tests/cost/test_cost_offers.py::test_a_type_the_price_list_does_not_sell_is_an_error",
        "REPO005": "tests/plan/test_plan_inputs.py::test_an_unreadable_folder_is_an_error_not_empty",
        "REPO006": "tests/plan/test_plan_inputs.py::test_symlinked_and_dangling_files_are_located_errors",
        "SPEC242": "tests/plan/test_plan_inputs.py::test_regional_quotas_across_deployments",
        "SPEC243": "tests/plan/test_plan_inputs.py::test_regional_quotas_across_deployments",
        "SPEC244": "tests/plan/test_plan_inputs.py::test_regional_quotas_across_deployments",
    }
    assert sorted(codes - covered - set(elsewhere)) == []
    assert codes >= set(elsewhere)
