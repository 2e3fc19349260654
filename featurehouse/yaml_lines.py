"""Load YAML while remembering the line each value came from, so errors can name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import SpecError

Location = tuple[Any, ...]


class LineMap:
    """Maps a path inside a YAML document (``('feature_views', 0, 'ttl')``) to a 1-based line."""

    def __init__(self) -> None:
        self._lines: dict[Location, int] = {}

    def record(self, path: Location, line: int) -> None:
        self._lines.setdefault(path, line)

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
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise SpecError(
                    f"key '{key}' appears twice in the same mapping", None, key_node.start_mark.line + 1
                )
            # the key's own line is the most useful place to point at
            lines.record(path + (key,), key_node.start_mark.line + 1)
            result[key] = _construct(value_node, path + (key,), lines, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_with_lines(path: Path, display_name: str | None = None) -> tuple[Any, LineMap]:
    """Parse one YAML file; return its data and a LineMap. Syntax errors become SpecError."""
    name = display_name or str(path)
    text = path.read_text(encoding="utf-8")
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
        problem = error.problem or "invalid YAML"
        raise SpecError(f"invalid YAML: {problem}", name, mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
