"""What every warehouse gives the SDK, `featurehouse sync` and `check`: the `Warehouse` base.

One module per engine (``duckdb``, ``postgres``, ``spark``) subclasses it with the engine's
connection (from the dbt profile's target), its Arrow reads, its entity_df upload, its
type names and its identifier quoting. Results travel as Arrow tables, never row by row.
Heavy imports stay inside functions so the CLI starts fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.dbt.profile import DbtTarget

if TYPE_CHECKING:
    import pyarrow as pa

    from featurehouse.dbt.manifest import Relations

SPINE_PLACEHOLDER = "__fh_spine_input"


class Warehouse:
    """The common face of a warehouse connection."""

    # the sqlglot dialect of the SQL sent to this engine
    dialect: str
    # the dbt adapter type (``type:`` in profiles.yml) this class reads
    adapter: str = ""
    # the pip extra that brings the engine's driver
    extra: str = ""
    target: DbtTarget
    location: str = ""  # the database itself: a DuckDB file, a Postgres host and database
    # where dbt put each model (target/manifest.json); set by connect()
    relations: Relations | None = None

    @classmethod
    def open(cls, target: DbtTarget, root: Path, read_only: bool = True) -> Warehouse:
        """A connection to ``target`` (``root``: the dbt project, for relative paths)."""
        return cls(target)  # type: ignore[call-arg]

    def relation(self, model: str) -> str:
        """The quoted, schema-qualified name dbt gives ``model`` in this target."""
        if self.relations is not None:
            return self.relations.relation(model)
        from sqlglot import exp

        return exp.table_(model, db=self.target.schema, quoted=True).sql(dialect=self.dialect)

    def origin(self, model: str) -> str:
        """Where ``model``'s table lives, whatever the target is called: its database and relation."""
        return f"{self.location} {self.relation(model)}"

    def quote(self, name: str) -> str:
        """``name`` as a quoted identifier of this engine's SQL."""
        from sqlglot import exp

        return exp.to_identifier(name, quoted=True).sql(dialect=self.dialect)

    def type_name(self, arrow_type: pa.DataType) -> str:  # pragma: no cover - interface
        """The engine's column type that holds ``arrow_type`` values (used to upload a spine)."""
        raise NotImplementedError

    def column_kind(self, sql_type: str) -> str:
        """The kind (integer, float, string, bytes, bool, timestamp, null, else the name) of a
        column of this engine's type ``sql_type``, as ``columns()`` names it."""
        return sql_kind(sql_type)

    def has_pgvector(self) -> bool | None:
        """Whether pgvector is installed in the warehouse; None where the engine has no such extension
        (offline retrieval then uses the engine's own vector functions or the portable SQL)."""
        return None

    def arrow(self, sql: str) -> pa.Table:  # pragma: no cover - interface
        """The rows ``sql`` returns, as an Arrow table; WarehouseError with one sentence when it fails."""
        raise NotImplementedError

    def execute(self, sql: str) -> None:  # pragma: no cover - interface
        """Run ``sql`` for its effect; WarehouseError with one sentence when it fails."""
        raise NotImplementedError

    def columns(self, sql: str) -> list[tuple[str, str]]:  # pragma: no cover - interface
        """Names and warehouse types of the columns ``sql`` returns."""
        raise NotImplementedError

    @contextlib.contextmanager
    def spine(self, table: pa.Table) -> Iterator[str]:  # pragma: no cover - interface
        """Make ``table`` queryable as SPINE_PLACEHOLDER for the duration of the block."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        pass


def select_from(sql: str, columns: list[Any]) -> Any:
    """``SELECT columns FROM (sql) AS q`` as a sqlglot query; ``sql`` (dbt-compiled, possibly
    large) is passed through as text, not parsed."""
    from sqlglot import exp

    return exp.select(*columns).from_(exp.paren(exp.Var(this=sql)).as_("q"))


def first_line(error: Exception) -> str:
    """DuckDB appends hints on further lines ("Did you mean ...?"); an error is one sentence."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def sql_kind(sql_type: str) -> str:
    """The kind of a DuckDB or Postgres column type name (see Warehouse.column_kind)."""
    text = sql_type.lower()
    if text.endswith("[]") or text.startswith(("interval", "struct", "map", "union")):
        return text
    if "timestamp" in text or text == "date":
        return "timestamp"
    if any(word in text for word in ("char", "text", "string")):
        return "string"
    if text in ("blob", "bytea") or "binary" in text:
        return "bytes"
    if text.startswith("bool"):
        return "bool"
    if "int" in text:
        return "integer"
    if any(word in text for word in ("double", "real", "float", "numeric", "decimal")):
        return "float"
    if text == '"null"' or text == "null":
        return "null"
    return text
