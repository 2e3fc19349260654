"""Spark: the session of a dbt-spark target (``method: session``), read as Arrow.

dbt-spark's session method runs Spark SQL in the calling process on
``SparkSession.builder.enableHiveSupport()`` with the profile's ``server_side_parameters``;
this module builds its session the same way, so that the SDK, ``featurehouse sync`` and
``dbt`` (run in the same process or one after the other over the same metastore) see the
same tables. Results leave Spark with ``DataFrame.toArrow()`` (Arrow batches, not rows) and
an entity_df enters with ``createDataFrame`` from Arrow as a temporary view.

On a cluster (Databricks, a Spark Thrift Server) dbt talks thrift/HTTP; the Python side then
needs a Spark session of that cluster (a Databricks notebook or job, ``spark-submit``, or
Spark Connect through ``SPARK_REMOTE``): see docs/warehouses.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import WarehouseError
from featurehouse.warehouse.base import SPINE_PLACEHOLDER, Warehouse, first_line, select_from, sql_kind

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

# what featurehouse needs of every session it reads with, whatever the profile says:
# timestamps are naive UTC (decision 0002), and dbt-spark turns ANSI mode off for its own SQL
SESSION_SETTINGS = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false"}
# Arrow out of Spark and into it (createDataFrame from Arrow, toArrow)
ARROW_SETTINGS = {"spark.sql.execution.arrow.pyspark.enabled": "true"}
# a library must not draw on its caller's terminal; these only apply to a session it starts
START_SETTINGS = {"spark.ui.showConsoleProgress": "false"}


def spark_session(config: dict[str, Any], root: Path | None = None) -> SparkSession:
    """The Spark session of a dbt-spark ``method: session`` target, built as dbt-spark builds it.

    Relative paths in ``server_side_parameters`` (a local metastore, the warehouse folder)
    stay relative to the working directory, as dbt reads them.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise WarehouseError(
            "the dbt target is Spark, which featurehouse reads with pyspark: pip install 'featurehouse[spark]'"
        ) from None
    # the session dbt-spark (or an earlier call) started in this process: asking the builder
    # again would have Spark log "Using an existing Spark session" on every call
    running = SparkSession.getActiveSession() or getattr(SparkSession, "_instantiatedSession", None)
    if running is not None:
        for name, value in {**SESSION_SETTINGS, **ARROW_SETTINGS}.items():
            running.conf.set(name, value)
        return running
    builder = SparkSession.builder.enableHiveSupport()
    parameters = {str(k): str(v) for k, v in (config.get("server_side_parameters") or {}).items()}
    for name, value in {**START_SETTINGS, **parameters, **SESSION_SETTINGS, **ARROW_SETTINGS}.items():
        builder = builder.config(name, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:  # py4j / Java start-up failures have no common class
        raise WarehouseError(f"cannot start the Spark session: {first_line(error)}") from None
    # getOrCreate() hands back a session dbt may have made: its SQL settings still apply
    for name, value in {**SESSION_SETTINGS, **ARROW_SETTINGS}.items():
        session.conf.set(name, value)
    return session


class SparkWarehouse(Warehouse):
    """The Spark session of a dbt-spark target; tables as dbt-spark names them (``schema.model``)."""

    dialect = "spark"
    adapter = "spark"
    extra = "spark"

    def __init__(self, target: DbtTarget, root: Path):
        self.target = target
        method = str(target.config.get("method", "session"))
        if method != "session":
            raise WarehouseError(
                f"the dbt target '{target.target_name}' connects to Spark with method '{method}'; featurehouse's "
                "Python side reads Spark through a Spark session (method: session, or SPARK_REMOTE for Spark "
                "Connect): see docs/warehouses.md"
            )
        self._spark = spark_session(target.config, root)
        self.location = f"spark:{self._spark.conf.get('spark.sql.warehouse.dir', '')}"

    @classmethod
    def open(cls, target: DbtTarget, root: Path, read_only: bool = True) -> Warehouse:
        """The target's Spark session (shared with dbt when it runs in this process)."""
        return cls(target, root)

    def relation(self, model: str) -> str:
        """``schema.model`` with Spark's backquotes (a double-quoted name is a string in Spark SQL)."""
        from sqlglot import exp

        database, schema, identifier = (
            self.relations.location(model) if self.relations is not None else (None, self.target.schema, model)
        )
        return exp.table_(identifier, db=schema, catalog=database, quoted=True).sql(dialect=self.dialect)

    def type_name(self, arrow_type: pa.DataType) -> str:
        """The Spark SQL type of ``arrow_type`` values, as Spark's own Arrow conversion gives it."""
        from pyspark.sql.pandas.types import from_arrow_type

        return str(from_arrow_type(arrow_type).simpleString())

    def column_kind(self, sql_type: str) -> str:
        """Spark's names: ``array<float>``, ``map<…>``, ``struct<…>`` are kinds of their own."""
        text = sql_type.lower()
        if text.startswith(("array<", "map<", "struct<", "interval")) or text == "void":
            return "null" if text == "void" else text
        return sql_kind(text)

    def _sql(self, sql: str) -> Any:
        from pyspark.errors import PySparkException

        try:
            return self._spark.sql(sql)
        except PySparkException as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None

    def arrow(self, sql: str) -> pa.Table:
        from pyspark.errors import PySparkException

        frame = self._sql(sql)
        try:
            table = frame.toArrow()
        except PySparkException as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None
        return _naive_utc(table)

    def execute(self, sql: str) -> None:
        from pyspark.errors import PySparkException

        try:
            self._sql(sql).collect()
        except PySparkException as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None

    def columns(self, sql: str) -> list[tuple[str, str]]:
        from sqlglot import exp

        # Spark analyses a query when it is handed over: the schema costs no job
        frame = self._sql(select_from(sql, [exp.Star()]).sql(dialect=self.dialect))
        return [(field.name, field.dataType.simpleString()) for field in frame.schema.fields]

    @contextlib.contextmanager
    def spine(self, table: pa.Table) -> Iterator[str]:
        from pyspark.errors import PySparkException

        try:
            frame = self._spark.createDataFrame(_zoned_utc(table))
            frame.createOrReplaceTempView(SPINE_PLACEHOLDER)
        except PySparkException as error:
            raise WarehouseError(f"cannot load the entity rows into Spark: {first_line(error)}") from None
        try:
            yield SPINE_PLACEHOLDER
        finally:
            self._spark.catalog.dropTempView(SPINE_PLACEHOLDER)

    def close(self) -> None:
        """The session is shared with dbt and later calls in this process: it stays up."""


def _zoned_utc(table: pa.Table) -> pa.Table:
    """Naive timestamps marked UTC, so Spark reads them as TIMESTAMP (instants), not TIMESTAMP_NTZ."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit, tz="UTC")))
    return table


def _naive_utc(table: pa.Table) -> pa.Table:
    """Spark's TIMESTAMP comes out zoned in the session's zone (UTC); featurehouse's warehouse
    timestamps are naive UTC (decision 0002), as DuckDB and Postgres return them."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit)))
    return table
