"""Compile-time checks of vector features against what their sources are known to hold.

A file source (parquet) is read by DuckDB: a column of fixed-size arrays (``FLOAT[384]``)
must have the declared ``vector.dimensions``; a list column's lengths are read (that column
only, cached while the file is unchanged) and the first row of another length is named by
its key; a column that is no list of numbers cannot hold an embedding. Every other kind of
source is checked in the warehouse by the ``vector_dimensions`` dbt test the compiler adds
to schema.yml.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from featurehouse.spec.repo import FeatureRepo

_FIXED = re.compile(r"^(FLOAT|DOUBLE|REAL|DECIMAL\(\d+,\d+\)|HUGEINT|BIGINT|INTEGER|SMALLINT|TINYINT)\[(\d+)\]$")
_LIST = re.compile(r"^(FLOAT|DOUBLE|REAL|DECIMAL\(\d+,\d+\)|HUGEINT|BIGINT|INTEGER|SMALLINT|TINYINT)\[\]$")


def check_vector_sources(repo: FeatureRepo) -> None:
    """Raise a SpecError for a vector feature whose file source has the wrong array length or type."""
    from featurehouse.spec.sources import file_column_types

    for name in sorted(repo.feature_views):
        view = repo.feature_views[name]
        feature = view.vector_feature
        if feature is None or feature.vector is None or feature.expression is not None:
            continue
        source = repo.sources[view.source]
        if source.path is None:
            continue
        types = file_column_types(repo.root, source.path)
        if types is None:
            continue
        reverse = {f: column for column, f in source.field_mapping.items()}
        column = reverse.get(feature.name, feature.name)
        found = types.get(column)
        if found is None:
            continue  # a missing column is reported by the source column checks
        index = view.features.index(feature)
        fixed = _FIXED.match(found.replace(" ", ""))
        if fixed:
            if int(fixed.group(2)) != feature.vector.dimensions:
                raise repo.spec_error(
                    "feature_views",
                    view.name,
                    ("schema", index, "vector"),
                    f"vector.dimensions is {feature.vector.dimensions}, but column '{column}' of {source.path} holds "
                    f"arrays of {fixed.group(2)} ({found}); set dimensions: {fixed.group(2)} or fix the file",
                    feature=feature.name,
                )
        elif _LIST.match(found.replace(" ", "")):
            keys = [reverse.get(k, k) for k in repo.join_keys(view)]
            wrong = _first_wrong_length(str(repo.root / source.path), column, tuple(keys), feature.vector.dimensions)
            if wrong is not None:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, wrong[:-1]))
                raise repo.spec_error(
                    "feature_views",
                    view.name,
                    ("schema", index, "vector"),
                    f"vector.dimensions is {feature.vector.dimensions}, but in {source.path} the row with "
                    f"{shown} has {wrong[-1]} elements in column '{column}'; fix the file or the spec",
                    feature=feature.name,
                )
        else:
            raise repo.spec_error(
                "feature_views",
                view.name,
                ("schema", index, "dtype"),
                f"column '{column}' of {source.path} is {found}, which is not a list of numbers; a vector "
                "feature needs an array of floats (FLOAT[] or FLOAT[n])",
                feature=feature.name,
            )


def _first_wrong_length(path: str, column: str, keys: tuple[str, ...], dimensions: int) -> tuple | None:
    """(key values..., length) of the first row, by key, whose list in ``column`` is not ``dimensions`` long."""
    import os

    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = 0
    return _first_wrong_length_cached(path, mtime, column, keys, dimensions)


@functools.lru_cache(maxsize=64)
def _first_wrong_length_cached(
    path: str, _mtime: int, column: str, keys: tuple[str, ...], dimensions: int
) -> tuple | None:
    from sqlglot import exp

    from featurehouse.spec.sources import file_table, run_on_file

    length = exp.Anonymous(this="len", expressions=[exp.column(column, quoted=True)])
    query = (
        exp.select(*[exp.column(k, quoted=True) for k in keys], length)
        .from_(file_table(path))
        .where(
            exp.and_(
                exp.Not(this=exp.Is(this=exp.column(column, quoted=True), expression=exp.Null())),
                exp.NEQ(this=length.copy(), expression=exp.Literal.number(dimensions)),
            )
        )
        .order_by(*[exp.column(k, quoted=True) for k in keys])
        .limit(1)
    )
    rows = run_on_file(path, query.sql(dialect="duckdb"))
    return tuple(rows[0]) if rows else None
