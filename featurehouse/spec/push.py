"""Push sources: the batch source a push source extends, the views it feeds and its schema.

A push source (``sources:`` entry with ``push: {batch_source: ...}``) feeds every feature
view over its batch source: offline, pushed rows land in a log that the views' models read
beside the batch source; online, they are written to the plain (non-aggregation) online
views at once. Its schema is the batch source's columns those views read (source-side
names), typed by the views; see docs/push.md and docs/decisions/0022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.spec.model import CREATED_TIMESTAMP

if TYPE_CHECKING:
    from featurehouse.spec.model import FeatureView, Source
    from featurehouse.spec.repo import FeatureRepo

# the log's own column: when featurehouse received the row (its created time when it has none)
ARRIVED_AT = "__fh_arrived_at"


@dataclass(frozen=True)
class PushColumn:
    """One column of a push source's schema (the batch source's name for it)."""

    name: str
    dtype: str
    role: str  # "key" | "event" | "created" | "value"

    @property
    def required(self) -> bool:
        """Whether every pushed row must carry a value (join keys and the event time)."""
        return self.role in ("key", "event")


@dataclass(frozen=True)
class PushSchema:
    """What a push source accepts: its columns, and the views it feeds."""

    name: str
    batch: Source
    columns: tuple[PushColumn, ...]
    views: tuple[str, ...]  # every view over the batch source (fed offline)
    online_views: tuple[str, ...]  # the plain online views among them (written online at once)

    @property
    def created(self) -> str:
        """The created-time column: the batch source's, or ``created_timestamp``."""
        return next(c.name for c in self.columns if c.role == "created")

    @property
    def event(self) -> str:
        """The event-time column (the batch source's ``timestamp_field``)."""
        return next(c.name for c in self.columns if c.role == "event")

    def column(self, name: str) -> PushColumn | None:
        """The column named ``name``, if the schema has it."""
        return next((c for c in self.columns if c.name == name), None)


def push_sources(repo: FeatureRepo) -> dict[str, Source]:
    """The push sources of ``repo`` by name."""
    return {name: s for name, s in repo.sources.items() if s.push is not None}


def pushes_of(repo: FeatureRepo, batch_source: str) -> list[str]:
    """The push sources that extend ``batch_source``."""
    return sorted(
        n for n, s in push_sources(repo).items() if s.push is not None and s.push.batch_source == batch_source
    )


def check_push_sources(repo: FeatureRepo) -> None:
    """Cross-references of push sources; raises SpecError with file and line."""
    pushes = push_sources(repo)
    for name, source in pushes.items():
        assert source.push is not None
        batch = source.push.batch_source
        if batch not in repo.sources:
            raise repo.spec_error(
                "sources",
                name,
                ("push", "batch_source"),
                f"unknown source '{batch}'{did_you_mean(batch, repo.sources)}",
            )
        if batch in pushes:
            raise repo.spec_error(
                "sources", name, ("push", "batch_source"), f"'{batch}' is a push source; name a batch source"
            )
        others = [n for n in pushes_of(repo, batch) if n != name]
        if others:
            raise repo.spec_error(
                "sources",
                name,
                ("push", "batch_source"),
                f"the push source '{others[0]}' already extends '{batch}'; one push source per batch source",
            )
    for view in repo.feature_views.values():
        pushed = pushes.get(view.source)
        if pushed is not None and pushed.push is not None:
            raise repo.spec_error(
                "feature_views",
                view.name,
                ("source",),
                f"'{view.source}' is a push source; name its batch source '{pushed.push.batch_source}' "
                "(a push source feeds every view over its batch source)",
            )


def push_schema(repo: FeatureRepo, name: str) -> PushSchema:
    """The schema of push source ``name``; RequestError when there is no such push source."""
    pushes = push_sources(repo)
    if name not in pushes:
        hint = did_you_mean(name, pushes)
        if name in repo.sources:
            raise RequestError(f"source '{name}' is not a push source; declare one with push: {{batch_source: {name}}}")
        raise RequestError(f"unknown push source '{name}'{hint}")
    push = pushes[name].push
    assert push is not None
    batch = repo.sources[push.batch_source]
    views = [v for _, v in sorted(repo.feature_views.items()) if v.source == batch.name]
    declared = {f.name: f.dtype for f in push.schema_}
    typed: dict[str, tuple[str, str]] = {}  # column -> (dtype, where it came from)
    wanted: list[tuple[str, str]] = []  # (column, role) in order

    def add(column: str, dtype: str | None, role: str, where: str) -> None:
        if column not in [c for c, _ in wanted]:
            wanted.append((column, role))
        if dtype is None or column in declared:
            return
        known = typed.get(column)
        if known is None:
            typed[column] = (dtype, where)
        elif known[0] != dtype:
            raise RequestError(
                f"push source '{name}': column '{column}' is {known[0]} in {known[1]} and {dtype} in {where}; "
                f"declare its dtype under push.schema"
            )

    for view in views:
        reverse = {feature: column for column, feature in batch.field_mapping.items()}
        for key in repo.join_keys(view):
            add(reverse.get(key, key), repo.join_key_dtype(view, key), "key", f"view '{view.name}'")
        for feature in view.features:
            if feature.expression is None:
                add(reverse.get(feature.name, feature.name), feature.dtype, "value", f"view '{view.name}'")
        for feature in view.features:
            if feature.expression is not None:
                for column in expression_columns(feature.expression):
                    add(column, None, "value", f"view '{view.name}'")
        for aggregation in view.aggregations:
            add(reverse.get(aggregation.column, aggregation.column), None, "value", f"view '{view.name}'")
    for column in declared:
        add(column, None, "value", "push.schema")
    columns = [PushColumn(batch.timestamp_field, "timestamp", "event")]
    created = batch.created_timestamp_column or CREATED_TIMESTAMP
    columns.append(PushColumn(created, "timestamp", "created"))
    for column, role in wanted:
        if column in (batch.timestamp_field, created):
            continue
        dtype = declared.get(column) or typed.get(column, (None, ""))[0]
        if dtype is None:
            raise RequestError(
                f"push source '{name}': no plain feature gives the dtype of column '{column}' (read by an "
                f"expression or aggregation); declare it under push.schema as {{name: {column}, dtype: ...}}"
            )
        columns.append(PushColumn(column, dtype, role))
    keys = [c for c in columns if c.role == "key"]
    columns = [*keys, *[c for c in columns if c.role != "key"]]
    online = tuple(v.name for v in views if v.online and not v.aggregations)
    return PushSchema(name, batch, tuple(columns), tuple(v.name for v in views), online)


def expression_columns(expression: str) -> list[str]:
    """The columns an expression reads (parsed by sqlglot, imported only when a push needs it)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(expression)
    return list(dict.fromkeys(c.name for c in tree.find_all(exp.Column)))


def push_view_of(repo: FeatureRepo, view: FeatureView) -> str | None:
    """The push source feeding ``view`` (one that extends its batch source), if any."""
    pushes = pushes_of(repo, view.source)
    return pushes[0] if pushes else None


def describe_schema(schema: PushSchema) -> list[dict[str, Any]]:
    """The schema as ``describe`` and the docs show it."""
    return [{"name": c.name, "dtype": c.dtype, "required": c.required, "role": c.role} for c in schema.columns]
