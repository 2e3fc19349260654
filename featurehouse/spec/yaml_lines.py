"""Load YAML while remembering the line each value came from, so errors can name it.

Spec files are input, not trusted code: the loader is PyYAML's safe one, and it bounds
what a small file can make it do (docs/decisions/0009-no-templates-from-specs.md): file
size, nesting depth, and the values aliases and merge keys may add (a "billion laughs"
file stops at once with one line instead of taking minutes and gigabytes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from featurehouse.errors import SpecError, excerpt

Location = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
# values that aliases (*name) and merge keys (<<) may add on top of those written in the
# file: generous for shared defaults, far below what a nested alias bomb expands to
MIN_ALIAS_BUDGET = 10_000
ALIAS_BUDGET_FACTOR = 10


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that counts the nodes it composes and refuses deep nesting
    (PyYAML's composer recurses: 5,000 nested brackets would overflow Python's stack)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.composed = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.check_event(yaml.AliasEvent):
            self.composed += 1
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep", None, line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Budget:
    """How many values construction may still build; aliases count every time they are used."""

    def __init__(self, composed: int) -> None:
        self.left = composed + max(MIN_ALIAS_BUDGET, ALIAS_BUDGET_FACTOR * composed)

    def spend(self, count: int, node: yaml.Node) -> None:
        self.left -= count
        if self.left < 0:
            raise SpecError(
                "aliases (*name) and merge keys (<<) expand to too many values (an alias bomb?); "
                "write the values out or share fewer levels",
                None,
                node.start_mark.line + 1,
            )


class LineMap:
    """Maps a path inside a YAML document (``('feature_views', 0, 'ttl')``) to a 1-based line."""

    def __init__(self) -> None:
        self._lines: dict[Location, int] = {}

    def record(self, path: Location, line: int) -> None:
        """Remember the line of ``path`` (the first one recorded wins)."""
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


def _construct(
    node: yaml.Node,
    path: Location,
    lines: LineMap,
    loader: yaml.SafeLoader,
    budget: _Budget,
    parents: tuple[int, ...] = (),
) -> Any:
    lines.record(path, node.start_mark.line + 1)
    budget.spend(1, node)
    if id(node) in parents:  # &a [*a]: an alias inside the value it names
        raise SpecError(
            "an alias (*name) is used inside the value it names, which would never end", None, node.start_mark.line + 1
        )
    if len(parents) >= MAX_DEPTH:
        raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep", None, node.start_mark.line + 1)
    parents = (*parents, id(node))
    if isinstance(node, yaml.MappingNode):
        pairs, merged = _merged_pairs(node, budget)
        result: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for index, (key_node, value_node) in enumerate(pairs):
            line = key_node.start_mark.line + 1
            # PyYAML builds an aliased value once and shares it, so even a key that is an alias
            # bomb costs only the nodes written; excerpt() shows a bounded part of it
            key = _scalar(key_node, loader)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise SpecError(f"a key must be a plain name, not {type(key).__name__} {excerpt(key)}", None, line)
            if index >= merged:
                if key in own_keys:
                    raise SpecError(f"key {excerpt(key)} appears twice in the same mapping", None, line)
                own_keys.add(key)
            if key in result:  # overrides a merged value: point at the value that wins
                lines.forget((*path, key))
            # the key's own line is the most useful place to point at
            lines.record((*path, key), line)
            result[key] = _construct(value_node, (*path, key), lines, loader, budget, parents)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines, loader, budget, parents) for i, item in enumerate(node.value)]
    return _scalar(node, loader)


def _scalar(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    """A scalar's value; one the type it looks like cannot hold (a 5,000-digit number,
    month 13) is an error on its line, not a traceback."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as error:
        raise SpecError(
            f"cannot read the value {excerpt(node.value)}: {str(error)[:80]}; quote it to keep it as text",
            None,
            node.start_mark.line + 1,
        ) from None


def _merged_pairs(
    node: yaml.MappingNode, budget: _Budget, parents: tuple[int, ...] = ()
) -> tuple[list[tuple[yaml.Node, yaml.Node]], int]:
    """The (key, value) pairs of a mapping with its ``<<: *defaults`` merge keys expanded.

    Merged pairs come first, so that the mapping's own keys override them, and of several
    merged mappings the first wins, as YAML says; returns the pairs and how many were merged.
    PyYAML's ``flatten_mapping`` would do this too, but it rewrites shared (aliased) nodes.
    """
    if id(node) in parents or len(parents) >= MAX_DEPTH:  # &a {<<: *a}
        raise SpecError("a merge key (<<) merges a mapping into itself", None, node.start_mark.line + 1)
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
            continue
        if merged:
            raise SpecError(
                "key '<<' appears twice in the same mapping; merge several with <<: [*a, *b]",
                None,
                key_node.start_mark.line + 1,
            )
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise SpecError(
                    "a '<<' merge key takes a mapping or a list of mappings", None, key_node.start_mark.line + 1
                )
            pairs = _merged_pairs(source, budget, (*parents, id(node)))[0]
            budget.spend(len(pairs), key_node)
            merged.extend(pairs)
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
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into several spec files", name
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SpecError(
            f"the file is not UTF-8 text (byte 0x{data[error.start]:02x}); save it as UTF-8", name, line
        ) from None
    loader = _BoundedLoader(text)
    lines = LineMap()
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(node, (), lines, loader, _Budget(loader.composed)), lines
    except SpecError as error:
        raise SpecError(error.message, name, error.line) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = _yaml_problem(error)  # may quote the input (an undefined alias's name): keep it short
        problem = problem if len(problem) <= 160 else problem[:157] + "..."
        raise SpecError(f"invalid YAML: {problem}", name, mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
