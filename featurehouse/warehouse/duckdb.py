"""DuckDB, the embedded default: the file of a dbt-duckdb target, Arrow in and out natively."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import WarehouseError
from featurehouse.warehouse.base import SPINE_PLACEHOLDER, Warehouse, first_line

if TYPE_CHECKING:
    import pyarrow as pa

_DUCKDB_RESOURCE_SETTINGS = frozenset(
    {
        "memory_limit",
        "max_memory",
        "threads",
        "worker_threads",
        "temp_directory",
        "max_temp_directory_size",
    }
)


class DuckDBWarehouse(Warehouse):
    """The DuckDB file of a dbt-duckdb target, opened read-only unless asked otherwise."""

    dialect = "duckdb"
    adapter = "duckdb"
    extra = "duckdb"

    def __init__(self, target: DbtTarget, root: Path, read_only: bool = True):
        import duckdb

        self.target = target
        path = str(target.config.get("path", ":memory:"))
        if path != ":memory:" and not Path(path).is_absolute():
            path = str(root / path)
        self.location = f"duckdb:{path}"
        self.path = None if path == ":memory:" else path
        if path != ":memory:" and not Path(path).exists():
            raise WarehouseError(f"the DuckDB warehouse {path} does not exist yet; run 'dbt build' first")
        try:
            try:
                self._con = duckdb.connect(path, read_only=read_only and path != ":memory:")
            except duckdb.ConnectionException:
                # dbt running in this same process (dbtRunner) holds the file read-write, and
                # DuckDB allows one configuration per file per process: share it.
                self._con = duckdb.connect(path)
        except duckdb.Error as error:
            raise WarehouseError(f"cannot open the DuckDB warehouse {path}: {error}") from error
        # Timestamps are stored as UTC; show them as UTC whatever the machine's zone is.
        self._con.execute("SET TimeZone = 'UTC'").fetchall()
        # a library must not draw on its caller's terminal (notebooks, services, cron logs)
        self._con.execute("SET enable_progress_bar = false").fetchall()
        self._apply_settings(target.config.get("settings") or {})

    @classmethod
    def open(cls, target: DbtTarget, root: Path, read_only: bool = True) -> Warehouse:
        """The target's DuckDB file (``path:`` relative to ``root``)."""
        return cls(target, root, read_only=read_only)

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        """The profile's resource settings (memory_limit, threads, ...), as dbt-duckdb applies them.

        Only settings that bound the join's resources: others (S3 credentials, ...) may
        need extensions that the SDK does not load.
        """
        import duckdb

        for name, value in settings.items():
            if name.lower() not in _DUCKDB_RESOURCE_SETTINGS:
                continue
            try:
                self._con.execute(f"SET {name} = ?", [str(value)]).fetchall()
            except duckdb.Error as error:
                raise WarehouseError(
                    f"profiles.yml target '{self.target.target_name}': cannot apply DuckDB setting "
                    f"{name}={value!r}: {error}"
                ) from None

    def relation(self, model: str) -> str:
        if self.relations is not None:
            return self.relations.relation(model)
        from sqlglot import exp

        database = self.target.config.get("database") or None
        return exp.table_(model, db=self.target.schema, catalog=database, quoted=True).sql(dialect=self.dialect)

    def copy_database_to(self, path: Path) -> None:
        """Copy every schema, table and view of this database into a new DuckDB file at ``path``."""
        import duckdb
        from sqlglot import exp

        alias = exp.to_identifier("__fh_export")
        attach = exp.Attach(
            this=exp.alias_(exp.Literal.string(str(path)), alias),
            expressions=[exp.AttachOption(this=exp.var("READ_WRITE"))],
        ).sql(dialect=self.dialect)
        detach = exp.Detach(this=alias).sql(dialect=self.dialect)
        try:
            row = self._con.execute("select current_database()").fetchone()
            # current_database() always returns one row
            source = exp.to_identifier(cast(tuple[str], row)[0], quoted=True).sql(dialect=self.dialect)
            # the warehouse stays read-only; only the new file is written
            self._con.execute(attach).fetchall()
            try:
                # sqlglot has no COPY FROM DATABASE: text around its identifiers
                self._con.execute(f"COPY FROM DATABASE {source} TO {alias.sql(dialect=self.dialect)}").fetchall()
            finally:
                self._con.execute(detach).fetchall()
        except duckdb.Error as error:
            raise WarehouseError(first_line(error)) from error

    def type_name(self, arrow_type: pa.DataType) -> str:
        """DuckDB reads Arrow tables as they are: the spine is never created as a table."""
        return str(arrow_type)

    def arrow(self, sql: str) -> pa.Table:
        import duckdb

        try:
            return self._con.sql(sql).to_arrow_table()
        except duckdb.Error as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from error

    def execute(self, sql: str) -> None:
        self._con.execute(sql).fetchall()

    def columns(self, sql: str) -> list[tuple[str, str]]:
        import duckdb

        try:
            rows = self._con.execute(f"DESCRIBE {sql}").fetchall()
        except duckdb.Error as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from error
        return [(row[0], row[1]) for row in rows]

    @contextlib.contextmanager
    def spine(self, table: pa.Table) -> Iterator[str]:
        self._con.register(SPINE_PLACEHOLDER, table)
        try:
            yield SPINE_PLACEHOLDER
        finally:
            self._con.unregister(SPINE_PLACEHOLDER)

    def close(self) -> None:
        self._con.close()
