"""YAML with positions: every value knows its line and column, duplicates and tabs are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.diagnostics import Location
from tooling.source import SourceError, load_yaml, merge

F = Path("/repo/deployments/dev/x.yaml")


def test_positions_of_keys_and_values() -> None:
    source = load_yaml(F, "name: x\nmodel:\n  id: a/b\n  modalities: [text, image]\n")
    assert source.data == {"name": "x", "model": {"id": "a/b", "modalities": ["text", "image"]}}
    assert source.values[("name",)] == Location(F, 1, 7)
    assert source.keys[("model", "id")] == Location(F, 3, 3)
    assert source.values[("model", "id")] == Location(F, 3, 7)
    assert source.values[("model", "modalities", 1)] == Location(F, 4, 22)


def test_locate_falls_back_to_the_nearest_written_ancestor() -> None:
    source = load_yaml(F, "scaling:\n  min: 1\n")
    assert source.locate(("scaling", "target", "cpu_percent")) == Location(F, 2, 3)
    assert source.locate(("scaling", "target"), key=True) == Location(F, 1, 1)


def test_anchors_and_merge_keys() -> None:
    source = load_yaml(F, "base: &b {cpu: 1024, memory: 2048}\ncompute:\n  <<: *b\n  memory: 4096\n")
    assert source.data["compute"] == {"cpu": 1024, "memory": 4096}


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a: 1\nb:\n  c: 1\n  c: 2\n", 4, 3, "duplicate key 'c' (first written on line 3)"),
        ("a: 1\nb:\n\tc: 1\n", 3, 1, "tab character in indentation"),
        ("a: [1, 2\nb: 3\n", 2, 2, "YAML syntax"),
        ("a: 1\n---\nb: 2\n", 2, 1, "more than one YAML document"),
        ("a: !!binary notbase64!\n", 1, 4, "YAML value"),
    ],
)
def test_problems_are_located(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        load_yaml(F, text)
    (problem,) = caught.value.diagnostics
    assert (problem.location.line, problem.location.col) == (line, col)
    assert message in problem.message


def test_every_duplicate_is_reported_at_once() -> None:
    with pytest.raises(SourceError) as caught:
        load_yaml(F, "a: 1\na: 2\nb: {x: 1, x: 2}\n")
    assert [(d.location.line, d.field) for d in caught.value.diagnostics] == [(2, "a"), (3, "b.x")]


def test_empty_file_is_an_empty_mapping() -> None:
    assert load_yaml(F, "# only a comment\n").data == {}


def test_merge_keeps_origin_of_each_value() -> None:
    base_file, own_file = Path("/d/_defaults.yaml"), Path("/d/x.yaml")
    base = load_yaml(base_file, "region: eu-west-1\nnetwork:\n  allowed_cidrs: [10.0.0.0/8, 10.1.0.0/16]\n")
    own = load_yaml(own_file, "name: x\nnetwork:\n  allowed_cidrs: [172.16.0.0/12]\n")
    merged = merge(base, own)
    assert merged.data == {
        "region": "eu-west-1",
        "network": {"allowed_cidrs": ["172.16.0.0/12"]},
        "name": "x",
    }
    assert merged.values[("region",)].file == base_file
    assert merged.values[("network", "allowed_cidrs", 0)] == Location(own_file, 3, 19)
    # The base's second CIDR is gone, and so is where it was written.
    assert ("network", "allowed_cidrs", 1) not in merged.values
    assert base.data["network"]["allowed_cidrs"] == ["10.0.0.0/8", "10.1.0.0/16"]  # inputs untouched


def test_several_merge_sources_do_not_count_as_duplicates() -> None:
    text = "a: &a {x: 1, y: 1}\nb: &b {x: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n"
    assert load_yaml(F, text).data["c"] == {"x": 1, "y": 3}
