"""Online == offline for request-time features: every accepted construct, on generated data
(NULLs, zero divisors, large and negative numbers, integers beside floats, NaN, strings,
timestamps), evaluated by the warehouse's SQL (DuckDB, Postgres) and by the online evaluator."""

from __future__ import annotations

import struct
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.repos import write_repo
from support.request_equality import (
    EQUALITY_SPECS,
    EXPRESSIONS,
    INPUTS,
    create_inputs,
    online_values,
    same,
    warehouse_values,
)

from featurehouse.spec.repo import load_repo
from featurehouse.spec.request_views import compiled

_INTS = st.one_of(
    st.integers(-5, 5),  # zero divisors, small remainders
    st.integers(-(2**31), 2**31),
    st.integers(-(2**62), 2**62),  # large: sums and products overflow int64 (an error on both sides)
)
# finite results only: a float beyond ±1.8e308 is inf in DuckDB and Python but an error in Postgres
# (docs/decisions/0025), so magnitudes stay within 1e-100..1e100 and every product and quotient is finite
_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, -2.5, 1.5, float("nan")]),
    st.floats(min_value=-1e100, max_value=1e100, allow_nan=False).filter(lambda x: x == 0 or abs(x) >= 1e-100),
)
_FLOAT32 = st.floats(min_value=-(2.0**100), max_value=2.0**100, width=32, allow_nan=False)
_TEXT = st.one_of(st.sampled_from(["a", "b", "", "é👍🏽"]), st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8))
_TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
    lambda t: t - timedelta(microseconds=t.microsecond % 1)
)
_VALUES = {
    "int64": _INTS,
    "float64": _FLOATS,
    "float32": _FLOAT32,
    "string": _TEXT,
    "timestamp": _TIMES,
    "bool": st.booleans(),
}
ROWS = st.lists(st.tuples(*(st.none() | _VALUES[d] for _, d in INPUTS)), min_size=1, max_size=12)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):
    root = write_repo(Path(tmp_path_factory.mktemp("equality")), {"specs.yml": EQUALITY_SPECS})
    repo = load_repo(root)
    return compiled(repo, repo.request_views["rv"])


def _assert_equal(online: dict, offline: dict, rows: list) -> None:
    for name, dtype, expression in EXPRESSIONS:
        left, right = online[name], offline[name]
        if left == "error" or right == "error":
            assert left == right, f"{name} = {expression}: online {left!r}, warehouse {right!r}"
            continue
        for row, a, b in zip(rows, left, right):
            if dtype == "float32" and a is not None and b is not None:
                # Postgres sends a REAL as its shortest decimal: compare as the float32 both stand for
                a, b = _float32(a), _float32(b)
            assert same(a, b), f"{name} = {expression} on {row}: online {a!r}, warehouse {b!r}"


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def test_every_construct_is_checked():
    constructs = " ".join(e for _, _, e in EXPRESSIONS).lower()
    for word in ("/", "%", "case", "coalesce", "nullif", "abs", "least", "greatest", "floor", "ceil", "length",
                 "||", "cast", "between", " in ", "is null", "not", "and", "or"):
        assert word in constructs, word


@given(rows=ROWS)
@SETTINGS
def test_online_equals_duckdb(plan, rows):
    import duckdb

    con = duckdb.connect()

    def execute(sql, params):
        con.execute(sql, params) if params is not None else con.execute(sql)

    create_inputs(execute, rows, "?")
    offline = warehouse_values(lambda sql: con.execute(sql).fetchall(), plan, "duckdb")
    _assert_equal(online_values(plan, rows), offline, rows)


@pytest.fixture
def pg(postgres_url):
    import psycopg

    schema = f"h5_eq_{uuid.uuid4().hex[:8]}"
    con = psycopg.connect(postgres_url, autocommit=True)
    con.execute(f'CREATE SCHEMA "{schema}"')
    con.execute(f'SET search_path TO "{schema}"')
    yield con
    con.execute(f'DROP SCHEMA "{schema}" CASCADE')
    con.close()


@given(rows=ROWS)
@SETTINGS
def test_online_equals_postgres(plan, pg, rows):
    def execute(sql, params):
        pg.execute(sql, params)

    create_inputs(execute, rows, "%s")

    def run(sql):
        return pg.execute(sql).fetchall()

    offline = warehouse_values(run, plan, "postgres")
    _assert_equal(online_values(plan, rows), offline, rows)
