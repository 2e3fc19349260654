"""What file sources hold (columns and types, read by DuckDB, cached while the file is
unchanged), and the check that every column a view reads is there."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurehouse.errors import did_you_mean

if TYPE_CHECKING:
    from sqlglot import exp

    from featurehouse.spec.model import FeatureView, Source
    from featurehouse.spec.repo import FeatureRepo


def known_source_columns(repo: FeatureRepo, view: FeatureView) -> set[str]:
    """Columns an expression of ``view`` may use; checks every column the view reads on the way.

    Where the source's columns can be known (a file, a seed's CSV, dbt's catalog.json, the
    spec's ``columns:``, the columns schema.yml documents for a ref) a misspelt column is a
    SpecError at compile time instead of a binder error in dbt; where they cannot, compile
    trusts the spec (see ``source_columns``).
    """
    source = repo.sources[view.source]
    known = source_columns(repo, source)
    if known is not None:
        _check_source_columns(repo, view, known)
        if known.complete:
            return set(known.names)
    reverse = {feature: column for column, feature in source.field_mapping.items()}
    columns = {source.timestamp_field, *source.field_mapping, *source.columns}
    if known is not None:
        columns.update(known.names)
    if source.created_timestamp_column:
        columns.add(source.created_timestamp_column)
    columns.update(reverse.get(key, key) for key in repo.join_keys(view))
    columns.update(reverse.get(f.name, f.name) for f in view.features if f.expression is None)
    columns.update(reverse.get(a.column, a.column) for a in view.aggregations)
    return columns


# a name this close to a known column and not one itself is a typo, even where the known
# columns may be only some of the source's (documented in schema.yml)
NEAR_MISS_CUTOFF = 0.8


@dataclass(frozen=True)
class SourceColumns:
    """What is known of a source's columns (source-side names).

    ``complete``: these are all its columns (a file, a seed's CSV, dbt's catalog.json);
    ``declared``: the spec's ``columns:``, which with the source's own timestamp, created and
    field_mapping columns must hold every column a view reads; otherwise (documented in
    schema.yml) only some: a name that is a near miss of one of them is reported.
    """

    names: frozenset[str]
    complete: bool
    where: str
    declared: bool = False


def source_columns(repo: FeatureRepo, source: Source) -> SourceColumns | None:
    """The source's known columns, or None when nothing can be known (compile trusts the spec)."""
    if source.path is not None:
        found = _file_columns(repo.root, source.path)
        return None if found is None else SourceColumns(found, True, source.path)
    if source.columns:
        return SourceColumns(frozenset(source.columns), False, f"the columns: of source '{source.name}'", declared=True)
    if source.ref is None and source.source is None:
        return None  # a table: only the warehouse knows, and compile does not connect
    return _dbt_columns(repo, source)


def _dbt_columns(repo: FeatureRepo, source: Source) -> SourceColumns | None:
    """A ref'd model/seed's or a dbt source's columns, from dbt's artifacts of the last run (no dbt start)."""
    from featurehouse.dbt import manifest as dbt_manifest

    found = dbt_manifest.load(repo.root)
    if found is None:
        return None
    if source.ref is not None:
        node = found.find(source.ref)
        label = f"{node.resource_type} '{source.ref}'" if node is not None else ""
    else:
        assert source.source is not None
        source_name, table_name = source.source.split(".")
        node = found.sources.get((source_name, table_name))
        label = f"dbt source '{source.source}'"
    if node is None:
        return None
    if node.resource_type == "seed" and node.package == found.project_name:
        header = _csv_header(repo.root / node.path)
        if header:
            return SourceColumns(frozenset(header), True, f"{label} ({node.path})")
    catalog_path = found.path.with_name(dbt_manifest.CATALOG)
    catalog = found.catalog_columns.get(node.unique_id)
    if catalog and not _newer(repo.root / node.path, catalog_path, node.resource_type):
        inside = catalog_path.is_relative_to(repo.root)
        shown = catalog_path.relative_to(repo.root).as_posix() if inside else catalog_path
        return SourceColumns(
            frozenset(catalog), True, f"{label} ({shown}; run 'dbt docs generate' if it changed since)"
        )
    if node.columns:
        return SourceColumns(frozenset(node.columns), False, f"the columns schema.yml documents for {label}")
    return None


def _newer(model_file: Path, catalog: Path, resource_type: str) -> bool:
    """Whether a model's SQL changed after catalog.json was written (its columns may have changed too)."""
    if resource_type == "source":
        return False  # a source's table changes outside dbt: the catalog is the best there is
    try:
        return model_file.stat().st_mtime > catalog.stat().st_mtime
    except OSError:
        return True


def _csv_header(path: Path) -> list[str] | None:
    import csv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _check_source_columns(repo: FeatureRepo, view: FeatureView, known: SourceColumns) -> None:
    """Every column ``view`` reads from its source is one the source has (see SourceColumns)."""
    import difflib

    source = repo.sources[view.source]
    reverse = {feature: column for column, feature in source.field_mapping.items()}
    own = {source.timestamp_field, *source.field_mapping}
    if source.created_timestamp_column:
        own.add(source.created_timestamp_column)
    listed = "list it under the source's columns: if the source has it, " if known.declared else ""

    def missing(column: str, own_field: bool = False) -> str | None:
        """Why ``column`` is not a column of the source, or None when it is (or may be)."""
        if column in known.names or (known.declared and not own_field and column in own):
            return None
        if known.complete or (known.declared and not own_field):
            hint = did_you_mean(column, known.names | (own if known.declared else set()))
        else:
            close = difflib.get_close_matches(column, list(known.names), n=1, cutoff=NEAR_MISS_CUTOFF)
            if not close:
                return None  # the known columns may be only some of the source's
            hint = f" (did you mean '{close[0]}'?)"
        return f"column '{column}' is not in {known.where}{hint}"

    for field in ("timestamp_field", "created_timestamp_column"):
        column = getattr(source, field)
        problem = missing(column, own_field=True) if column else None
        if problem:
            raise repo.spec_error("sources", source.name, (field,), f"{field}: {problem}")
    for column in source.field_mapping:
        problem = missing(column, own_field=True)
        if problem:
            raise repo.spec_error("sources", source.name, ("field_mapping", column), f"field_mapping: {problem}")
    for key in repo.join_keys(view):
        problem = missing(reverse.get(key, key))
        if problem:
            raise repo.spec_error(
                "feature_views",
                view.name,
                ("entities",),
                f"join key {problem}; {listed}{'or ' if listed else ''}map it with field_mapping "
                f"on source '{source.name}'",
            )
    for index, feature in enumerate(view.features):
        problem = missing(reverse.get(feature.name, feature.name)) if feature.expression is None else None
        if problem:
            raise repo.spec_error(
                "feature_views",
                view.name,
                ("schema", index, "name"),
                f"{problem}; {listed}map it with field_mapping on source '{source.name}'{',' if listed else ''} "
                "or give an expression:",
                feature=feature.name,
            )
    if known.declared:
        return  # aggregation columns over declared columns: aggregations.validate says it its way
    for index, aggregation in enumerate(view.aggregations):
        problem = missing(reverse.get(aggregation.column, aggregation.column))
        if problem:
            raise repo.spec_error(
                "feature_views", view.name, ("aggregations", index, "column"), f"aggregation {problem}"
            )


def file_reader(path: str) -> str:
    """The DuckDB table function that reads ``path``."""
    return "read_csv" if path.lower().endswith((".csv", ".csv.gz", ".tsv")) else "read_parquet"


def _file_columns(root: Path, path: str) -> frozenset[str] | None:
    """The columns of a parquet/CSV file (or glob) as DuckDB reads it; None when it is not there yet."""
    types = file_column_types(root, path)
    return None if types is None else frozenset(types)


def file_column_types(root: Path, path: str) -> dict[str, str] | None:
    """Column name -> DuckDB type (upper case) of a parquet/CSV file (or glob) under ``root``;
    None when it is not there yet or cannot be read. Cached while the file is unchanged."""
    full = root / path
    if not any(mark in path for mark in "*?[") and not full.is_file():
        return None
    stat = full.stat() if full.is_file() else None
    return _file_column_types_cached(str(full), stat.st_mtime_ns if stat else 0)


@functools.lru_cache(maxsize=64)
def _file_column_types_cached(path: str, _mtime_ns: int) -> dict[str, str] | None:
    rows = query_file(path, "DESCRIBE SELECT * FROM {file}")
    return None if rows is None else {row[0]: str(row[1]).upper() for row in rows}


def query_file(path: str, sql: str) -> list[tuple] | None:
    """Run the constant ``sql`` with ``{file}`` standing for the file's DuckDB reader; None when
    it cannot be read. SQL built from names goes to :func:`run_on_file` as a sqlglot expression."""
    return run_on_file(path, sql.format(file=f"{file_reader(path)}(?)"))


def file_table(path: str) -> exp.Table:
    """The file's DuckDB reader as a sqlglot table, ``read_csv(?)``: the path is the query's parameter."""
    from sqlglot import exp

    return exp.Table(this=exp.Anonymous(this=file_reader(path), expressions=[exp.Placeholder()]))


def run_on_file(path: str, sql: str) -> list[tuple] | None:
    """Run DuckDB ``sql`` whose one parameter (``?``) is ``path``; None when the file cannot be read."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(sql, [path]).fetchall()
    except duckdb.Error:
        return None  # unreadable: the compiler reports the file itself
    finally:
        con.close()
