"""Load YAML while remembering the line each value came from, so errors can name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import SpecError

Location = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LineMap:
    """Maps a path inside a YAML document (``('feature_views', 0, 'ttl')``) to a 1-based line."""

    def __init__(self) -> None:
        self._lines: dict[Location, int] = {}

    def record(self, path: Location, line: int) -> None:
        self._lines.setdefault(path, line)

    def forget(self, path: Location) -> None:
        """Drop the lines of ``path`` and everything below it (a merged key the mapping overrides)."""
        for recorded in [p for p in self._lines if p[: len(path)] == path]:
            del self._lines[recorded]

    def line(self, path: Location) -> int | None:
        """The line of ``path`` or of its closest recorded ancestor."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), None)


def _construct(node: yaml.Node, path: Location, lines: LineMap, loader: yaml.SafeLoader) -> Any:
    lines.record(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        pairs, merged = _merged_pairs(node)
        result: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for index, (key_node, value_node) in enumerate(pairs):
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpecError(f"a key must be a plain name, not {type(key).__name__} {key!r}", None, line)
            if index >= merged:
                if key in own_keys:
                    raise SpecError(f"key '{key}' appears twice in the same mapping", None, line)
                own_keys.add(key)
            if key in result:  # overrides a merged value: point at the value that wins
                lines.forget(path + (key,))
            # the key's own line is the most useful place to point at
            lines.record(path + (key,), line)
            result[key] = _construct(value_node, path + (key,), lines, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _merged_pairs(node: yaml.MappingNode) -> tuple[list[tuple[yaml.Node, yaml.Node]], int]:
    """The (key, value) pairs of a mapping with its ``<<: *defaults`` merge keys expanded.

    Merged pairs come first, so that the mapping's own keys override them, and of several
    merged mappings the first wins, as YAML says; returns the pairs and how many were merged.
    PyYAML's ``flatten_mapping`` would do this too, but it rewrites shared (aliased) nodes.
    """
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
            continue
        if merged:
            raise SpecError("key '<<' appears twice in the same mapping; merge several with <<: [*a, *b]", None,
                            key_node.start_mark.line + 1)
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise SpecError("a '<<' merge key takes a mapping or a list of mappings", None,
                                key_node.start_mark.line + 1)
            merged.extend(_merged_pairs(source)[0])
    return merged + own, len(merged)


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with where it started when that is another line (an unclosed bracket)."""
    problem = error.problem or "invalid YAML"
    context = error.context or ""
    if problem.startswith("but "):  # "expected a single document in the stream" + "but found another document"
        return f"{context} {problem}"
    if "'\\t'" in problem:
        return f"{problem} (indent with spaces: YAML does not allow tabs)"
    start, end = error.context_mark, error.problem_mark
    if not (context and start and end and start.line != end.line):
        return problem
    opened = {"flow sequence": "'['", "flow mapping": "'{'", "quoted scalar": "quote"}
    what = next((mark for kind, mark in opened.items() if kind in context), None)
    if what:
        return f"{problem} (is the {what} on line {start.line + 1} closed?)"
    return f"{problem} ({context} that starts on line {start.line + 1})"


def load_yaml_with_lines(path: Path, display_name: str | None = None) -> tuple[Any, LineMap]:
    """Parse one YAML file; return its data and a LineMap. Syntax errors become SpecError."""
    name = display_name or str(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SpecError(f"the file is not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8",
                        name, line) from None
    loader = yaml.SafeLoader(text)
    lines = LineMap()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(node, (), lines, loader), lines
    except SpecError as error:
        raise SpecError(error.message, name, error.line) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise SpecError(f"invalid YAML: {_yaml_problem(error)}", name, mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
