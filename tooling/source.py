"""YAML files read with the position of every key and value, and merged under their defaults.

PyYAML's composer gives each node its line and column; we build the plain data ourselves from the
node tree so that every value keeps where it was written, duplicate keys are caught (PyYAML silently
keeps the last one), and a value inherited from `_defaults.yaml` still points at that file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tooling.diagnostics import Diagnostic, Location

try:  # the C loader is several times faster; the pure-Python one gives identical nodes
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

FieldPath = tuple[str | int, ...]

# A deployment has about a hundred values. Aliases can make a small file expand exponentially
# ("billion laughs"); past this many values we stop instead of hanging CI on a hostile pull request.
MAX_VALUES = 50_000


class _TooLarge(Exception):
    pass


@dataclass
class Source:
    """Plain data with, for every field path, where its key and its value are written."""

    data: Any
    values: dict[FieldPath, Location] = field(default_factory=dict)
    keys: dict[FieldPath, Location] = field(default_factory=dict)

    def locate(self, path: FieldPath, *, key: bool = False) -> Location | None:
        """The closest written position of `path`: itself, else the nearest ancestor that exists."""
        table = self.keys if key else self.values
        for n in range(len(path), -1, -1):
            sub = path[:n]
            if sub in table:
                return table[sub]
            if sub in self.values:
                return self.values[sub]
        return None


class SourceError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def _loc(file: Path, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _error(file: Path, line: int, col: int, message: str, code: str, *, hint: str = "") -> Diagnostic:
    return Diagnostic(Location(file, line, col), "", message, code, hint=hint)


def _tab_errors(file: Path, text: str) -> list[Diagnostic]:
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            errors.append(
                _error(
                    file,
                    number,
                    indent.index("\t") + 1,
                    "tab character in indentation",
                    "YAML001",
                    hint="YAML indents with spaces only",
                )
            )
    return errors


def load_yaml(file: Path, text: str | None = None) -> Source:
    """Parse one YAML document. Raises SourceError with every problem found, never a YAML traceback."""
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError([_error(file, 1, 1, f"not UTF-8 text ({exc.reason})", "YAML002")]) from None
        except OSError as exc:
            raise SourceError([_error(file, 1, 1, f"cannot read: {exc.strerror}", "YAML002")]) from None
    if tabs := _tab_errors(file, text):
        raise SourceError(tabs)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "expected a single document" in str(exc.context or ""):
            problem = "more than one YAML document; a deployment file holds exactly one"
        raise SourceError([_error(file, line, col, f"YAML syntax: {problem}", "YAML003")]) from None
    except yaml.YAMLError as exc:
        raise SourceError([_error(file, 1, 1, f"YAML syntax: {exc}", "YAML003")]) from None
    finally:
        loader.dispose()
    if node is None:
        return Source({}, {(): Location(file)})
    source = Source(None)
    problems: list[Diagnostic] = []
    try:
        source.data = _build(file, loader, node, (), source, problems)
    except _TooLarge:
        raise SourceError(
            [
                _error(
                    file,
                    1,
                    1,
                    f"the document expands to more than {MAX_VALUES} values",
                    "YAML007",
                    hint="aliases (*name) repeat whole subtrees; write the values out",
                )
            ]
        ) from None
    if problems:
        raise SourceError(problems)
    return source


def _build(
    file: Path, loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath, source: Source, problems: list
) -> Any:
    source.values[path] = _loc(file, node.start_mark)
    if len(source.values) > MAX_VALUES:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys the way YAML 1.1 defines them
        merged = len(node.value) - own  # flatten_mapping puts the merged pairs first
        result: dict[str, Any] = {}
        inherited: set[FieldPath] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            key_loc = _loc(file, key_node.start_mark)
            if not isinstance(key, str):
                problems.append(
                    _error(
                        file,
                        key_loc.line,
                        key_loc.col,
                        f"key {key!r} is not a name",
                        "YAML004",
                        hint="quote it to use it as a name",
                    )
                )
                continue
            if key in result and (index < merged or (*path, key) in inherited):
                # A key written here overrides one from `<<` (and among several `<<` sources, one wins).
                inherited.discard((*path, key))
            elif key in result:
                first = source.keys[(*path, key)]
                problems.append(
                    Diagnostic(
                        key_loc,
                        ".".join(str(p) for p in (*path, key)),
                        f"duplicate key '{key}' (first written on line {first.line})",
                        "YAML005",
                        hint="each key may appear once in a mapping",
                    )
                )
                continue
            if index < merged:
                inherited.add((*path, key))
            source.keys[(*path, key)] = key_loc
            result[key] = _build(file, loader, value_node, (*path, key), source, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(file, loader, item, (*path, index), source, problems)
            for index, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        loc = _loc(file, node.start_mark)
        problems.append(_error(file, loc.line, loc.col, f"YAML value: {exc.problem}", "YAML006"))
        return None


def merge(base: Source, override: Source) -> Source:
    """Deep-merge `override` over `base` (mappings merge key by key; anything else is replaced whole)."""
    result = Source(copy.deepcopy(base.data), dict(base.values), dict(base.keys))
    _merge_into(result, override, ())
    return result


def _merge_into(result: Source, override: Source, path: FieldPath) -> None:
    target = _get(result.data, path)
    value = _get(override.data, path)
    if isinstance(target, dict) and isinstance(value, dict):
        if path in override.values:
            result.values[path] = override.values[path]
        for key in value:
            child = (*path, key)
            if child in override.keys:
                result.keys[child] = override.keys[child]
            if key in target:
                _merge_into(result, override, child)
            else:
                target[key] = copy.deepcopy(value[key])
                _copy_positions(result, override, child)
        return
    # Replaced whole: forget where the base's sub-values were, take the override's.
    for table in (result.values, result.keys):
        for sub in [p for p in table if p[: len(path)] == path and len(p) > len(path)]:
            del table[sub]
    if path:
        _set(result.data, path, copy.deepcopy(value))
    else:
        result.data = copy.deepcopy(value)
    _copy_positions(result, override, path)


def _copy_positions(result: Source, override: Source, path: FieldPath) -> None:
    for table, source_table in ((result.values, override.values), (result.keys, override.keys)):
        for sub, loc in source_table.items():
            if sub[: len(path)] == path:
                table[sub] = loc


def _get(data: Any, path: FieldPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: FieldPath, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value
