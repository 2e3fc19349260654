"""Request-time features evaluated both ways: the SQL the warehouse runs and the online evaluator.

``EQUALITY_SPECS`` declares a feature view ``st`` (every scalar family) and a request view ``rv``
with one feature per accepted construct. ``warehouse_values`` runs the features' SQL over a
table of generated inputs (DuckDB or Postgres); ``online_values`` runs the compiled Python.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

INPUTS = (  # column, dtype: request fields (r*) and the feature view's features (st__*)
    ("ri", "int64"),
    ("rf", "float64"),
    ("rs", "string"),
    ("rt", "timestamp"),
    ("rb", "bool"),
    ("st__i", "int64"),
    ("st__f", "float64"),
    ("st__g", "float32"),
    ("st__s", "string"),
    ("st__t", "timestamp"),
    ("st__b", "bool"),
)

# (name, dtype, expression): every accepted construct at least once
EXPRESSIONS = (
    ("add_int", "int64", "ri + st__i"),
    ("sub_int", "int64", "ri - st__i"),
    ("mul_int", "int64", "ri * st__i"),
    ("neg_int", "int64", "-ri"),
    ("add_mixed", "float64", "rf + st__i"),
    ("mul_float", "float64", "st__f * rf"),
    ("sub_float32", "float64", "st__g - rf"),
    ("div_int", "float64", "ri / st__i"),
    ("div_float", "float64", "rf / nullif(st__f, 0)"),
    ("div_literal", "float64", "st__i / 24.0 + 0.1"),
    ("mod_int", "int64", "ri % st__i"),
    ("lt_float", "bool", "rf < st__f"),
    ("eq_int", "bool", "ri = st__i"),
    ("ge_mixed", "bool", "ri >= st__f"),
    ("ne_string", "bool", "rs <> st__s"),
    ("le_time", "bool", "rt <= st__t"),
    ("ne_bool", "bool", "rb <> st__b"),
    ("logic", "bool", "(rf > 0 and st__b) or not rb"),
    ("is_null", "bool", "st__s is null"),
    ("is_not_null", "bool", "rf is not null"),
    ("between", "bool", "ri between st__i and 100"),
    ("in_list", "bool", "rs in ('a', 'b', st__s)"),
    ("case_mixed", "float64", "case when rf > st__f then rf when st__i is null then 0 else st__i end"),
    ("case_simple", "int64", "case rs when 'a' then 1 when 'b' then 2 end"),
    ("coalesce", "float64", "coalesce(rf, st__f, 0)"),
    ("nullif_int", "int64", "nullif(ri, st__i)"),
    ("abs_float", "float64", "abs(rf)"),
    ("abs_int", "int64", "abs(st__i)"),
    ("least", "float64", "least(rf, st__f, ri)"),
    ("greatest", "int64", "greatest(st__i, ri)"),
    ("floor", "float64", "floor(rf)"),
    ("ceil", "float64", "ceil(st__g)"),
    ("length", "int64", "length(rs)"),
    ("concat", "string", "rs || st__s"),
    ("cast_double", "float64", "cast(ri as double)"),
    ("cast_text", "string", "cast(rs as text)"),
    ("time_coalesce", "timestamp", "coalesce(rt, st__t)"),
    ("time_case", "timestamp", "case when rb then rt end"),
    ("to_float32", "float32", "st__g * 2"),
    ("to_int32", "int32", "length(st__s) + 1"),
)

EQUALITY_SPECS = (
    "entities:\n"
    "  - {name: driver, join_keys: [driver_id]}\n"
    "sources:\n"
    "  - {name: stats, table: raw.stats, timestamp_field: event_timestamp}\n"
    "feature_views:\n"
    "  - name: st\n"
    "    entities: [driver]\n"
    "    source: stats\n"
    "    schema:\n"
    + "".join(f"      - {{name: {c[4:]}, dtype: {d}}}\n" for c, d in INPUTS if c.startswith("st__"))
    + "request_views:\n"
    "  - name: rv\n"
    "    request:\n"
    + "".join(f"      - {{name: {c}, dtype: {d}}}\n" for c, d in INPUTS if not c.startswith("st__"))
    + "    schema:\n"
    + "".join(f'      - {{name: {n}, dtype: {d}, expression: "{e}"}}\n' for n, d, e in EXPRESSIONS)
)

_SQL_TYPES = {
    "int64": "BIGINT",
    "float64": "DOUBLE PRECISION",
    "float32": "REAL",
    "string": "TEXT",
    "timestamp": "TIMESTAMP",
    "bool": "BOOLEAN",
}


def _slot(node: Any) -> int:
    name = node.value if node.op == "field" else f"{node.value[0]}__{node.value[1]}"
    return [c for c, _ in INPUTS].index(name)


def online_values(plan: Any, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Feature name -> list of values, or the string 'error' when a row raised."""
    from featurehouse.online.request_features import EvaluationError, compile_feature

    out: dict[str, Any] = {}
    envs = [[_online_input(v, d) for v, (_, d) in zip(row, INPUTS)] for row in rows]
    for feature in plan.features:
        function = compile_feature(feature, _slot, "rv")
        try:
            out[feature.name] = [function(env) for env in envs]
        except EvaluationError:
            out[feature.name] = "error"
    return out


def _online_input(value: Any, dtype: str) -> Any:
    if dtype == "timestamp" and value is not None:
        return value.replace(tzinfo=timezone.utc)
    return value


def feature_sqls(plan: Any, dialect: str) -> dict[str, str]:
    """Feature name -> its SQL over the inputs table, in ``dialect``."""
    from sqlglot import exp

    from featurehouse.compile.request_sql import feature_sql

    def column(node: Any) -> exp.Expr:
        return exp.column(INPUTS[_slot(node)][0], quoted=True)

    return {f.name: feature_sql(f, column).sql(dialect=dialect) for f in plan.features}


def warehouse_values(run: Any, plan: Any, dialect: str) -> dict[str, Any]:
    """Feature name -> values from ``run(sql)`` (rows in row order), or 'error' when the query failed."""
    out: dict[str, Any] = {}
    for name, sql in feature_sqls(plan, dialect).items():
        try:
            out[name] = [_normal(r[0]) for r in run(f"SELECT {sql} FROM inputs ORDER BY row_id")]
        except Exception as error:  # a failed query: overflow, as online
            if "overflow" not in str(error).lower() and "out of range" not in str(error).lower():
                raise
            out[name] = "error"
    return out


def _normal(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def create_inputs(execute: Any, rows: list[tuple[Any, ...]], placeholder: str) -> None:
    """Create the ``inputs`` table (row_id + every input column) and fill it."""
    columns = ", ".join(f'"{c}" {_SQL_TYPES[d]}' for c, d in INPUTS)
    execute("DROP TABLE IF EXISTS inputs", None)
    execute(f"CREATE TABLE inputs (row_id INTEGER, {columns})", None)
    marks = ", ".join([placeholder] * (len(INPUTS) + 1))
    values = ", ".join(f"({marks})" for _ in rows)
    execute(f"INSERT INTO inputs VALUES {values}", [v for i, row in enumerate(rows) for v in (i, *row)])


def same(left: Any, right: Any) -> bool:
    """Equal values, NaN equal to NaN (as the warehouses have it)."""
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    if left != right:
        return False
    return type(left) is type(right) or {type(left), type(right)} <= {int, float}
