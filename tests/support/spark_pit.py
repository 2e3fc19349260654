"""The point-in-time harness (support.pit_harness) on Spark: the same repo, data and checks,
built once per test session in its own schema of the process's Spark session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from support import spark
from support.pit_harness import _ARROW, VIEWS, Harness, _shuffled, _specs
from support.repos import run_dbt, write_repo

_SPARK_TYPES = {
    "int64": "bigint",
    "int32": "int",
    "string": "string",
    "float64": "double",
    "bool": "boolean",
    "timestamp": "timestamp",
}


@dataclass
class SparkHarness(Harness):
    """Harness whose warehouse is the local Spark session (target ``spark``)."""

    def _table(self, name: str) -> str:
        return f"`{self.schema}`.`{name}`"

    def execute(self, *statements: str) -> None:
        spark.run_sql(*statements)

    def query(self, sql: str):
        from featurehouse.dbt.profile import load_target
        from featurehouse.warehouse import connect

        return connect(load_target(self.root, "spark", self.root), self.root).arrow(sql)

    def replace_rows(self, tables, shuffle=None) -> None:
        import pyarrow as pa

        for table, (columns, rows) in tables.items():
            names = [c for c, _ in columns]
            fields = [
                pa.field(c, pa.timestamp("us") if t == "timestamp" else getattr(pa, _ARROW[t])()) for c, t in columns
            ]
            data = pa.Table.from_pylist(
                [{c: r[c] for c in names} for r in _shuffled(rows, shuffle)], schema=pa.schema(fields)
            )
            spark.replace_table(self._table(table), data)

    def store(self):
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore(self.root, target="spark")


def build_spark(root: Path) -> SparkHarness:
    """Write, compile (Spark SQL) and ``dbt build`` the harness repo in a new Spark schema."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    spark.require_java()
    schema = spark.new_schema("fh_pit")
    harness = SparkHarness("spark", root, None, schema)
    write_repo(root, _specs(f"{schema}."), target="dev")
    with (root / "profiles.yml").open("a") as profiles:
        profiles.write(spark.spark_output(schema))
    statements = [f"create schema if not exists `{schema}`"]
    for name, (keys, features, _, _) in VIEWS.items():
        columns = [f"{k} bigint" for k in keys] + ["event_timestamp timestamp", "created timestamp"]
        columns += [f"{f} {_SPARK_TYPES[t]}" for f, t in features]
        statements.append(f"create table {harness._table('raw_' + name)} ({', '.join(columns)})")
    statements.append(
        f"create table {harness._table('spine')} "
        "(driver_id bigint, customer_id bigint, event_timestamp timestamp, label string)"
    )
    harness.execute(*statements)
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "spark"))
    run_dbt(root, "build", target="spark")
    return harness


@pytest.fixture(scope="session")
def spark_harness(tmp_path_factory) -> SparkHarness:
    harness = build_spark(tmp_path_factory.mktemp("pit_spark"))
    yield harness
    spark.run_sql(f"drop schema if exists `{harness.schema}` cascade")
