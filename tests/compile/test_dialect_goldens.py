"""Golden SQL of the warehouses that cannot run here: Snowflake, BigQuery, Databricks, Trino.

tests/golden/<dialect>/compiled/ holds the models as dbt compiles them (the golden specs and
the point-in-time harness's specs) and tests/golden/<dialect>/macros/ the macros rendered
for one call each, both written by ``python -m tests.golden.regenerate`` with a stand-in
adapter that loads the real adapter's macro package (tests/golden/dialect_stub.py).
Here: every golden file parses in its dialect; the goldens are what the macros render
today; and the training sets, translated to DuckDB by sqlglot, give the brute-force
reference's answer on the point-in-time tests' data (docs/decisions/0029).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from support.pit_harness import MIXED, NATIVE, SUBSET, VIEWS, random_rows, random_spine, reference_views
from support.reference import point_in_time_join

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DIALECTS = ["snowflake", "bigquery", "databricks", "trino"]
# dialects whose goldens sqlglot translates into DuckDB SQL that runs (decision 0029)
SEMANTIC = ["snowflake", "bigquery", "databricks", "trino"]
REQUESTS = {"ts_native": NATIVE, "ts_mixed": MIXED, "ts_subset": SUBSET}


def golden_files(dialect: str) -> list[Path]:
    return sorted((GOLDEN / dialect).rglob("*.sql"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_golden_file_parses_in_its_dialect(dialect: str) -> None:
    files = golden_files(dialect)
    names = {f"{p.parent.name}/{p.name}" for p in files}
    # the models of both repos and every rendered macro are there
    assert {
        "golden/ts_ranking_training.sql",
        "pit/ts_mixed.sql",
        "macros/point_in_time_join.sql",
        "macros/window_aggregation.sql",
        "macros/latest_snapshot.sql",
    } <= names
    for path in files:
        text = path.read_text()
        assert "{{" not in text and "{%" not in text, f"{path} still holds Jinja"
        statements = sqlglot.parse(text, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        assert any(statements), f"{path} holds no statement"


def test_snowflake_uses_its_native_asof_join_only_where_the_tie_rules_hold() -> None:
    native = (GOLDEN / "snowflake" / "compiled" / "pit" / "ts_native.sql").read_text()
    assert native.count("asof join") == 3 and "match_condition (s.__fh_ts >= f1.__fh_e)" in native
    # one row per (keys, event time) first: the match is unique, so it is the tie-break's winner
    assert native.count("qualify row_number() over (") == 3
    # filter_by_created_timestamp views take the sort-based pass next to the ASOF ones
    mixed = (GOLDEN / "snowflake" / "compiled" / "pit" / "ts_mixed.sql").read_text()
    assert mixed.count("asof join") == 2 and "__fh_m2 as (" in mixed and "__fh_m3 as (" in mixed
    for dialect in ["bigquery", "databricks", "trino"]:
        assert "asof" not in (GOLDEN / dialect / "compiled" / "pit" / "ts_native.sql").read_text().lower()


def test_goldens_are_what_the_macros_render_today() -> None:
    """Fails when a macro or the compiler changed without ``python -m tests.golden.regenerate``."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.golden.regenerate", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def to_duckdb(sql: str, dialect: str) -> str:
    """``sql`` written for DuckDB by sqlglot, and the two constructs sqlglot does not translate:
    Snowflake's ASOF JOIN ... MATCH_CONDITION becomes DuckDB's ASOF LEFT JOIN ... ON, Spark's
    monotonically_increasing_id() an unordered row_number()."""
    statement = sqlglot.parse_one(sql, read=dialect)
    for join in statement.find_all(exp.Join):
        condition = join.args.get("match_condition")
        if condition is not None:
            join.set("match_condition", None)
            join.set("on", exp.and_(join.args["on"], condition))
            join.set("side", "LEFT")
    # Spark numbers the spine in scan order; DuckDB's equivalent is an unordered row_number()
    for call in list(statement.find_all(exp.Anonymous)):
        if call.name.lower() == "monotonically_increasing_id":
            call.replace(sqlglot.parse_one("row_number() over ()", read="duckdb"))
    return statement.sql(dialect="duckdb")


def _load(con, rows: dict[str, list[dict]], spine: list[dict]) -> None:
    import pyarrow as pa

    types = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "string": pa.string(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
    }
    for name, (keys, features, _, _) in VIEWS.items():
        fields = [pa.field(k, pa.int64()) for k in keys]
        fields += [pa.field("event_timestamp", pa.timestamp("us")), pa.field("created_timestamp", pa.timestamp("us"))]
        fields += [pa.field(f, types[t]) for f, t in features]
        data = pa.Table.from_pylist(rows.get(name, []), schema=pa.schema(fields))
        con.execute(f"create table golden.main.fv_{name} as select * from data")
    columns = [
        ("driver_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us")),
        ("label", pa.string()),
    ]
    data = pa.Table.from_pylist(spine, schema=pa.schema([pa.field(c, t) for c, t in columns]))  # noqa: F841
    con.execute("create table golden.main.spine as select * from data")


@pytest.mark.parametrize("dialect", SEMANTIC)
@pytest.mark.parametrize("model", sorted(REQUESTS))
def test_golden_training_set_gives_the_reference_answer_in_duckdb(dialect: str, model: str) -> None:
    import duckdb

    query = to_duckdb((GOLDEN / dialect / "compiled" / "pit" / f"{model}.sql").read_text(), dialect)
    request = REQUESTS[model]
    for seed in range(16):
        rng = random.Random(seed)
        rows, spine = random_rows(rng, 12), random_spine(rng, 30)
        con = duckdb.connect()
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute("attach ':memory:' as golden")
            _load(con, rows, spine)
            con.execute("use golden.main")
            result = con.execute(query)
            names = [d[0] for d in result.description]
            got = [dict(zip(names, row)) for row in result.fetchall()]
        finally:
            con.close()
        expected = point_in_time_join(spine, reference_views(request, rows), full_feature_names=request[1])
        assert len(got) == len(expected), (dialect, model, seed)
        for i, (g, w) in enumerate(zip(got, expected)):
            assert g == w, f"{dialect} {model} seed {seed} spine row {i} {spine[i]}:\n got  {g}\n want {w}"


# window_aggregation: DuckDB runs RANGE frames over timestamps with interval offsets, which
# BigQuery rejects (numeric RANGE keys only), so BigQuery's golden is parsed, not run
AGGREGATION_DIALECTS = ["snowflake", "databricks", "trino"]
# the aggregations rendered into macros/window_aggregation.sql (tests/golden/regenerate.py)
AGGREGATIONS = [
    ("f_sum_1h", "sum", 3600),
    ("f_count_1h", "count", 3600),
    ("f_max_2h", "max", 7200),
    ("f_std_2h", "stddev", 7200),
]


def _aggregate(function: str, values: list) -> object:
    import math
    import statistics

    values = [v for v in values if v is not None]
    if function == "count":
        return len(values)
    if not values:
        return None
    return {"sum": math.fsum, "max": max, "stddev": lambda v: statistics.stdev(v) if len(v) > 1 else None}[function](
        values
    )


@pytest.mark.parametrize("dialect", AGGREGATION_DIALECTS)
def test_golden_window_aggregation_gives_the_reference_answer_in_duckdb(dialect: str) -> None:
    import datetime as dt
    import math

    import duckdb

    query = to_duckdb((GOLDEN / dialect / "macros" / "window_aggregation.sql").read_text(), dialect)
    for seed in range(16):
        rng = random.Random(seed)
        rows, spine = random_rows(rng, 12), random_spine(rng, 30)
        spine = [dict(row, label=f"l{i:03d}") for i, row in enumerate(spine)]  # numbered by label
        con = duckdb.connect()
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute("attach ':memory:' as golden")
            _load(con, rows, spine)
            con.execute("create table golden.main.spine_model as select * from golden.main.spine")
            con.execute("use golden.main")
            result = con.execute(query)
            names = [d[0] for d in result.description]
            got = {row[0]: dict(zip(names[1:], row[1:])) for row in result.fetchall()}
        finally:
            con.close()
        assert sorted(got) == list(range(1, len(spine) + 1))
        for i, row in enumerate(spine):
            t = row["event_timestamp"]
            for name, function, seconds in AGGREGATIONS:
                if t is None:
                    want = None
                else:
                    start = t - dt.timedelta(seconds=seconds)
                    values = [
                        e["f_float"]
                        for e in rows["drv"]
                        if e["driver_id"] == row["driver_id"] and start < e["event_timestamp"] <= t
                    ]
                    want = _aggregate(function, values)
                value = got[i + 1][name]
                where = f"{dialect} seed {seed} spine row {row} {name}"
                if isinstance(want, float) and value is not None:
                    assert math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-9), (where, value, want)
                else:
                    assert value == want, (where, value, want)
