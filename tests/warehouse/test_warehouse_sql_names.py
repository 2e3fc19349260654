"""The SQL the warehouse connections write themselves holds any name: quotes in a schema, a
model, a database file or an entity_df column reach the warehouse as that name."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from featurehouse.dbt.profile import DbtTarget
from featurehouse.warehouse import DuckDBWarehouse, PostgresWarehouse

ODD = 'we"ird \'name'


def test_duckdb_relation_quotes_schema_and_model(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema " + '"we""ird \'name"')
    con.execute('create table "we""ird \'name"."fv_a""b" as select 1 as x')
    con.close()
    target = DbtTarget("p", "p", "dev", tmp_path, {"type": "duckdb", "path": str(path), "schema": ODD})
    warehouse = DuckDBWarehouse(target, tmp_path)  # no manifest: the relation dbt would give
    try:
        assert warehouse.arrow("select x from " + warehouse.relation('fv_a"b')).to_pylist() == [{"x": 1}]
    finally:
        warehouse.close()


def test_duckdb_export_of_a_database_with_a_quote_in_its_name(tmp_path: Path) -> None:
    path = tmp_path / 'w"x.duckdb'
    con = duckdb.connect(str(path))
    con.execute("create table t as select 42 as v")
    con.close()
    target = DbtTarget("p", "p", "dev", tmp_path, {"type": "duckdb", "path": str(path)})
    warehouse = DuckDBWarehouse(target, tmp_path)
    out = tmp_path / "it's a copy.duckdb"
    try:
        warehouse.copy_database_to(out)
    finally:
        warehouse.close()
    copy = duckdb.connect(str(out), read_only=True)
    try:
        assert copy.execute("select v from t").fetchall() == [(42,)]
    finally:
        copy.close()


@pytest.mark.postgres
def test_postgres_spine_and_arrow_keep_odd_column_names(postgres_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    config = {"type": "postgres", **conninfo_to_dict(postgres_url)}
    config.setdefault("host", "127.0.0.1")
    warehouse = PostgresWarehouse(DbtTarget("p", "p", "pg", Path("."), config))
    table = pa.table({ODD: pa.array([1, 2], pa.int64()), "tags": pa.array([["a"], ['b"c']])})
    try:
        with warehouse.spine(table) as relation:
            result = warehouse.arrow("select * from " + relation)
    finally:
        warehouse.close()
    assert result.column_names == [ODD, "tags"]
    assert result.to_pylist() == [{ODD: 1, "tags": ["a"]}, {ODD: 2, "tags": ['b"c']}]
