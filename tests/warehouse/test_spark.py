"""Spark as the warehouse (dbt-spark, ``method: session``, a local Spark session).

The whole example repo (documents included) compiles to Spark SQL, ``dbt build`` runs, and the
SDK reads from Spark as Arrow: the training set and the documents view are equal to DuckDB's and
Postgres', and ``sync`` and ``check``
work from it. The point-in-time and window-aggregation properties run on Spark in
tests/sdk/test_point_in_time.py and tests/compile/test_aggregations.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from support import spark
from support.repos import PACKAGE_ROOT, postgres_output, run_dbt

NOW = dt.datetime(2026, 11, 27, 12, 0)

pytestmark = pytest.mark.spark


def _copy_example(root: Path, outputs: str) -> Path:
    root.mkdir()
    for name in ("featurehouse.yml", "dbt_project.yml"):
        shutil.copy(PACKAGE_ROOT / name, root / name)
    # all of the example, documents.yml too: its model models/example/documents_embedded.sql
    # splits the seed's embedding text with split() on Spark, string_to_array elsewhere
    for folder in ("macros", "feature_specs", "models/example"):
        shutil.copytree(PACKAGE_ROOT / folder, root / folder)
    (root / "profiles.yml").write_text("featurehouse:\n  target: dev\n  outputs:\n" + outputs)
    from featurehouse.cli.example import write_example_data

    write_example_data(root / "seeds", now=NOW)
    return root


def _build(root: Path, target: str, dialect: str) -> None:
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, dialect))
    run_dbt(root, "build", target=target)


def _training_set(root: Path, target: str) -> pa.Table:
    import pandas as pd

    from featurehouse import FeatureStore

    labels = pd.read_csv(root / "seeds" / "driver_labels.csv", parse_dates=["event_timestamp"])
    return FeatureStore(root, target=target).get_historical_features(labels, "driver_activity").to_arrow()


def _documents(root: Path, target: str) -> list[tuple[object, ...]]:
    """The documents view's rows (doc_id, event time, text, embedding), sorted, as Python values."""
    from featurehouse.dbt.profile import load_target
    from featurehouse.warehouse import connect

    warehouse = connect(load_target(root, target), root)
    table = warehouse.arrow(f"select doc_id, event_timestamp, text, embedding from {warehouse.relation('fv_documents')}")
    return sorted(zip(*(table.column(name).to_pylist() for name in table.column_names)), key=lambda row: row[:2])


@pytest.fixture(scope="module")
def spark_repo(tmp_path_factory) -> Path:
    """The example repo built on Spark once for the module (dbt build takes minutes)."""
    spark.require_java()
    schema = spark.new_schema("fh_example")
    root = _copy_example(tmp_path_factory.mktemp("example_spark") / "repo", spark.spark_output(schema))
    _build(root, "spark", "spark")
    yield root
    spark.run_sql(f"drop schema if exists `{schema}` cascade")


@pytest.mark.postgres
def test_example_gives_byte_equal_training_sets_on_duckdb_postgres_and_spark(
    spark_repo, tmp_path, postgres_url, postgres_schema
):
    duck_root = _copy_example(tmp_path / "duck", "    dev: {type: duckdb, path: data/warehouse.duckdb, threads: 1}\n")
    _build(duck_root, "dev", "duckdb")
    pg_root = _copy_example(tmp_path / "pg", postgres_output(postgres_url, postgres_schema))
    _build(pg_root, "pg", "postgres")
    on_duckdb = _training_set(duck_root, "dev")
    on_postgres = _training_set(pg_root, "pg")
    on_spark = _training_set(spark_repo, "spark")
    assert on_spark.num_rows == 1000
    assert on_spark.schema == on_duckdb.schema == on_postgres.schema
    assert on_spark.equals(on_duckdb), "Spark and DuckDB differ"
    assert on_spark.equals(on_postgres), "Spark and Postgres differ"
    assert on_spark.column("conv_rate").null_count < 100  # the join found features, not only NULLs
    # the documents view, whose embedding a per-adapter model splits, holds the same vectors too
    documents = _documents(spark_repo, "spark")
    assert documents == _documents(duck_root, "dev") == _documents(pg_root, "pg")
    assert len(documents) > 200 and len(documents[0][3]) == 64


def test_sync_and_check_read_the_snapshots_from_spark(spark_repo):
    from featurehouse import FeatureStore
    from featurehouse.online.check import audit
    from featurehouse.sync import sync

    store = FeatureStore(spark_repo, target="spark")
    report = sync(store, full_refresh=True)
    assert report.written > 0
    again = sync(store)  # by watermark: nothing was rebuilt since, so nothing is written
    assert again.written == 0
    snapshot = (
        spark.session()
        .sql(
            f"select driver_id, conv_rate from `{store.target.schema}`.`online_driver_hourly_stats` order by driver_id"
        )
        .toArrow()
    )
    rows = [{"driver_id": key} for key in snapshot.column("driver_id").to_pylist()]
    online = store.get_online_features(["driver_hourly_stats:conv_rate"], rows).to_dict()
    assert online["driver_id"] == snapshot.column("driver_id").to_pylist()
    # the snapshot is taken at dbt's run time; the example's values are days old by then,
    # so compare only the values the ttl still lets through
    served = [v for v in online["conv_rate"] if v is not None]
    assert all(v in snapshot.column("conv_rate").to_pylist() for v in served)
    result = audit(store)
    assert not result.differences, result.lines()


def test_results_leave_spark_as_typed_arrow(spark_repo):
    from featurehouse.dbt.profile import load_target
    from featurehouse.warehouse import SparkWarehouse, connect

    warehouse = connect(load_target(spark_repo, "spark"), spark_repo)
    assert isinstance(warehouse, SparkWarehouse)
    table = warehouse.arrow(
        "select cast(1 as bigint) as a, cast(1.5 as float) as b, 'x' as c, "
        "timestamp'2024-03-31 01:30:00.000001' as t, array(cast(1 as float)) as v, cast(null as int) as n"
    )
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "a": pa.int64(),
        "b": pa.float32(),
        "c": pa.string(),
        "t": pa.timestamp("us"),
        "v": types["v"],
        "n": pa.int32(),
    }
    assert pa.types.is_list(types["v"]) and types["v"].value_type == pa.float32()
    assert table.column("t")[0].as_py() == dt.datetime(2024, 3, 31, 1, 30, 0, 1)  # naive UTC, microseconds kept
    assert warehouse.columns("select 1 as x, 'a' as y") == [("x", "int"), ("y", "string")]
    assert warehouse.relation("fv_driver_hourly_stats").startswith("`")


def test_an_entity_df_enters_spark_as_one_arrow_upload(spark_repo):
    from featurehouse.dbt.profile import load_target
    from featurehouse.warehouse import connect

    warehouse = connect(load_target(spark_repo, "spark"), spark_repo)
    spine = pa.table(
        {
            "driver_id": pa.array([1, None, 3], pa.int64()),
            "event_timestamp": pa.array(
                [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 2, 0, 0, 0, 7)], pa.timestamp("us")
            ),
            "label": ["a", "", None],
        }
    )
    with warehouse.spine(spine) as name:
        back = warehouse.arrow(f"select * from {name} order by label")
    assert back.sort_by("label").equals(spine.sort_by("label"))


def test_a_failing_query_is_one_sentence(spark_repo):
    from featurehouse.dbt.profile import load_target
    from featurehouse.errors import WarehouseError
    from featurehouse.warehouse import connect

    warehouse = connect(load_target(spark_repo, "spark"), spark_repo)
    with pytest.raises(WarehouseError) as raised:
        warehouse.arrow("select no_such_column from range(1)")
    message = str(raised.value)
    assert "no_such_column" in message and "\n" not in message


def test_a_thrift_profile_says_how_the_python_side_reads_spark(tmp_path):
    from featurehouse.dbt.profile import DbtTarget
    from featurehouse.errors import WarehouseError
    from featurehouse.warehouse import connect

    target = DbtTarget("p", "p", "cluster", tmp_path, {"type": "spark", "method": "thrift", "host": "h", "schema": "s"})
    with pytest.raises(WarehouseError, match=r"method 'thrift'.*docs/warehouses\.md"):
        connect(target, tmp_path)
