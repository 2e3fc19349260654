"""Spark for the tests: one local Spark session per test process, shared by dbt-spark
(``method: session``, in-process) and featurehouse's SparkWarehouse.

A Spark session's metastore and warehouse folder are fixed when the session starts, so
every Spark profile of a test process points at the same throwaway folder and each repo
gets its own schema (database) in it.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest


@functools.lru_cache(maxsize=1)
def spark_dir() -> Path:
    """The process's Spark metastore and warehouse folder (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="fh_spark_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def spark_config() -> dict[str, Any]:
    """The ``server_side_parameters`` of every test profile (and the bench's)."""
    folder = spark_dir()
    return {
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={folder}/metastore_db;create=true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # the bench's 10M-row histories want more (bench/bench_spark.py sets it)
        "spark.driver.memory": os.environ.get("FEATUREHOUSE_SPARK_DRIVER_MEMORY", "2g"),
        # Derby writes derby.log into the working directory unless told otherwise
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={folder}/derby.log",
    }


def spark_output(schema: str, name: str = "spark") -> str:
    """A profiles.yml output (indented for ``outputs:``) for the local Spark session."""
    lines = [
        f"    {name}:",
        "      type: spark",
        "      method: session",
        "      host: NA",
        f"      schema: {schema}",
        "      threads: 1",
        "      server_side_parameters:",
    ]
    lines += [f'        {key}: "{value}"' for key, value in spark_config().items()]
    return "\n".join(lines) + "\n"


def new_schema(prefix: str = "fh_spark") -> str:
    """A schema name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def session():
    """The process's Spark session (started on first use, as dbt-spark would start it)."""
    from featurehouse.warehouse.spark import spark_session

    return spark_session({"server_side_parameters": spark_config()})


def run_sql(*statements: str) -> None:
    """Run Spark SQL statements in order."""
    spark = session()
    for statement in statements:
        spark.sql(statement).collect()


def replace_table(relation: str, table: Any) -> None:
    """Make the Spark table ``relation`` hold exactly the rows of the Arrow ``table`` (columns by position)."""
    import pyarrow as pa

    spark = session()
    zoned = table
    for i, field in enumerate(table.schema):  # naive times are UTC: TIMESTAMP, not TIMESTAMP_NTZ
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            zoned = zoned.set_column(i, field.name, zoned.column(i).cast(pa.timestamp("us", tz="UTC")))
    if zoned.num_rows == 0:
        spark.sql(f"truncate table {relation}").collect()
        return
    if zoned.num_rows <= 500_000:
        spark.createDataFrame(zoned).write.insertInto(relation, overwrite=True)
        return
    # a large table as one createDataFrame task overflows the driver: hand Spark a parquet file
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(dir=spark_dir()) as folder:
        pq.write_table(zoned, f"{folder}/rows.parquet", row_group_size=1_000_000)
        spark.read.parquet(folder).write.insertInto(relation, overwrite=True)


def to_spark_sql(statement: str) -> str:
    """A Postgres-flavoured test statement (``double precision``, ``text``, "quoted" names) in Spark SQL."""
    import sqlglot

    return sqlglot.transpile(statement, read="postgres", write="spark")[0]


def require_java() -> None:
    """Fail (never skip) when Spark cannot run here: the `spark` extra or Java is missing."""
    if shutil.which("java") is None:
        pytest.fail("Spark tests need Java 17 (scripts/setup.sh installs openjdk-17-jre-headless)", pytrace=False)
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("Spark tests need the spark extra: pip install -e '.[spark]'", pytrace=False)
