"""Checks of window aggregations against their sources (load_repo runs them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from featurehouse.spec.sources import file_column_types, file_table, run_on_file

if TYPE_CHECKING:
    from featurehouse.spec.model import FeatureView
    from featurehouse.spec.repo import FeatureRepo


# DuckDB types the window macros can cast to a number (booleans count as 0/1)
_NUMERIC_TYPE_PREFIXES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "REAL",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
)


def validate(repo: FeatureRepo) -> None:
    """Check every aggregation view against its source; raise a SpecError at the first problem."""
    for view in repo.feature_views.values():
        if view.aggregations:
            _validate_view(repo, view)


def _validate_view(repo: FeatureRepo, view: FeatureView) -> None:
    def fail(field_path: tuple[object, ...], message: str) -> NoReturn:
        raise repo.spec_error("feature_views", view.name, field_path, message)

    if view.features:
        fail(
            ("schema",),
            "a view with aggregations: computes aggregates only; declare the plain features "
            "(schema:) in another feature view over the same source",
        )
    if view.filter_by_created_timestamp:
        fail(
            ("filter_by_created_timestamp",),
            "filter_by_created_timestamp is not supported with aggregations: windows count events by "
            "event_timestamp; set it to false or remove it",
        )
    columns = _checkable_source_columns(repo, view)
    keys = repo.join_keys(view)
    for index, aggregation in enumerate(view.aggregations):
        if aggregation.column in keys and aggregation.function != "count":
            fail(
                ("aggregations", index, "column"),
                f"aggregation '{aggregation.output_name}': column '{aggregation.column}' is a join key; "
                "only count can aggregate it",
            )
        if columns is not None and aggregation.column not in columns:
            from featurehouse.errors import did_you_mean

            hint = did_you_mean(aggregation.column, columns) or f"; the source has {', '.join(sorted(columns))}"
            fail(
                ("aggregations", index, "column"),
                f"aggregation '{aggregation.output_name}': unknown column '{aggregation.column}' "
                f"in source '{view.source}'{hint}",
            )
    types = _file_column_types(repo, view)
    for index, aggregation in enumerate(view.aggregations):
        column_type = types.get(aggregation.column, "")
        numeric = column_type.startswith(_NUMERIC_TYPE_PREFIXES) and not column_type.endswith("]")  # not a list
        if aggregation.function == "count" or not column_type or numeric:
            continue
        path = repo.sources[view.source].path
        if column_type == "VARCHAR" and path is not None:  # column types come from file sources only
            # a CSV column read as text only fails on a value that is not a number (an
            # empty column reads as VARCHAR and casts fine)
            value = _first_non_number(str(repo.root / path), _source_column(repo, view, aggregation.column))
            if value is None:
                continue
            column_type = f"VARCHAR (it holds {value[:40]!r})"
        fail(
            ("aggregations", index, "function"),
            f"aggregation '{aggregation.output_name}': {aggregation.function} needs a numeric column, but "
            f"'{aggregation.column}' is {column_type} in {path}; only count works on any column",
        )


def _checkable_source_columns(repo: FeatureRepo, view: FeatureView) -> set[str] | None:
    """The feature-side names of the source's columns, or None when they cannot be known.

    A table/ref/source is only known when it declares ``columns:`` (otherwise every
    aggregation column is taken on trust, as feature columns are); files are checked by
    the compiler when it reads them.
    """
    source = repo.sources[view.source]
    if source.path is not None:
        return None  # compiler.known_source_columns checks file sources against the file itself
    if source.columns:
        found = {source.timestamp_field, *source.columns, *source.field_mapping}
        if source.created_timestamp_column:
            found.add(source.created_timestamp_column)
        found.update(repo.join_keys(view))
    else:
        return None
    # aggregation columns name features: a mapped source column is known by its feature name
    return {source.field_mapping.get(column, column) for column in found}


def _file_column_types(repo: FeatureRepo, view: FeatureView) -> dict[str, str]:
    """Feature-side column name -> DuckDB type of a file source; empty when unknown (not a file, not there)."""
    source = repo.sources[view.source]
    types = file_column_types(repo.root, source.path) if source.path is not None else None
    return {source.field_mapping.get(column, column): dtype for column, dtype in (types or {}).items()}


def _source_column(repo: FeatureRepo, view: FeatureView, name: str) -> str:
    reverse = {feature: column for column, feature in repo.sources[view.source].field_mapping.items()}
    return reverse.get(name, name)


def _first_non_number(path: str, column: str) -> str | None:
    """A value of a text column that does not cast to a number, among the file's first 100k rows."""
    from sqlglot import exp

    value = exp.column(column, quoted=True)
    first_rows = exp.select(value).from_(file_table(path)).limit(100000).subquery()
    not_a_number = exp.TryCast(this=value.copy(), to=exp.DataType.build("double")).is_(exp.null())
    select = (
        exp.select(value.copy())
        .from_(first_rows)
        .where(exp.and_(exp.not_(value.copy().is_(exp.null())), not_a_number))
        .limit(1)
    )
    rows = run_on_file(path, select.sql(dialect="duckdb"))
    return str(rows[0][0]) if rows else None
