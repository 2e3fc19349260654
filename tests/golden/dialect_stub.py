"""A stand-in dbt adapter for a warehouse that cannot run here (Snowflake, BigQuery, Databricks, Trino).

dbt renders featurehouse's macros exactly as it would for the real adapter when it sees:
- the adapter's type, so that ``adapter.dispatch`` resolves ``<type>__`` (then the parent
  adapter's prefix, then ``default__``);
- the adapter's own macro package (``dbt/include/<type>/``, taken from the adapter's PyPI
  wheel by tests/golden/regenerate.py), so that ``dbt.dateadd``, ``dbt.type_string()`` and
  the other cross-database macros render the adapter's SQL;
- its identifier quoting and its Column class's type labels (read from the wheel's
  ``column.py`` without importing it: it imports the warehouse's driver).

Everything else is dbt-duckdb's: a compile needs a connection only for introspection
(``adapter.get_columns_in_relation``), which answers from a local DuckDB file holding
empty tables of the same names. This module is loaded by the generated plugin packages
``dbt/adapters/<type>/__init__.py`` that tests/golden/regenerate.py writes.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt.adapters.base import AdapterPlugin
from dbt.adapters.base.meta import available
from dbt.adapters.duckdb.column import DuckDBColumn
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.impl import DuckDBAdapter
from dbt.adapters.duckdb.relation import DuckDBRelation

# type -> (identifier quote, parent adapter types as the real plugin declares them)
DIALECTS: dict[str, tuple[str, list[str]]] = {
    "snowflake": ('"', []),
    "bigquery": ("`", []),
    "databricks": ("`", ["spark"]),
    "trino": ('"', []),
}


def type_labels(column_file: Path) -> dict[str, str]:
    """The ``TYPE_LABELS`` dict literal of the adapter's Column class, read from its source."""
    tree = ast.parse(column_file.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                target = getattr(statement, "target", None) or (getattr(statement, "targets", None) or [None])[0]
                if isinstance(target, ast.Name) and target.id == "TYPE_LABELS" and statement.value is not None:  # type: ignore[attr-defined]
                    return dict(ast.literal_eval(statement.value))  # type: ignore[attr-defined]
    return {}


def plugin(dialect: str) -> AdapterPlugin:
    """The dbt plugin of the stand-in adapter for ``dialect``.

    FEATUREHOUSE_GOLDEN_ADAPTERS names the folder holding the unpacked wheels
    (``<dialect>/dbt/include/<dialect>`` and ``<dialect>/dbt/adapters/<dialect>/column.py``).
    """
    quote, parents = DIALECTS[dialect]
    unpacked = Path(os.environ["FEATUREHOUSE_GOLDEN_ADAPTERS"]) / dialect
    labels = {**DuckDBColumn.TYPE_LABELS, **type_labels(unpacked / "dbt" / "adapters" / dialect / "column.py")}
    lower = dialect == "databricks"  # DatabricksColumn.translate_type lower-cases the label

    class StubColumn(DuckDBColumn):
        TYPE_LABELS = labels

        @classmethod
        def translate_type(cls, dtype: str) -> str:
            translated = labels.get(dtype.upper(), dtype)
            return translated.lower() if lower else translated

    class StubConnectionManager(DuckDBConnectionManager):
        TYPE = dialect

    @dataclass
    class Credentials(DuckDBCredentials):
        @property
        def type(self) -> str:
            return dialect

    @dataclass(frozen=True, eq=False, repr=False)
    class StubRelation(DuckDBRelation):
        quote_character: str = field(default=quote)

    class Adapter(DuckDBAdapter):
        ConnectionManager = StubConnectionManager
        Relation = StubRelation
        Column = StubColumn

        def get_columns_in_relation(self, relation: Any) -> list[Any]:
            """The columns of the local DuckDB table of the same name (the real adapter's macro
            would ask its own warehouse's catalog)."""
            _, table = super().execute(
                "select column_name, data_type from information_schema.columns "
                f"where table_name = '{relation.identifier}' order by ordinal_position",
                fetch=True,
            )
            return [StubColumn(name, dtype) for name, dtype in table.rows]

        def execute(self, sql: str, auto_begin: bool = False, fetch: bool = False, limit: int | None = None) -> Any:
            """Run an introspection query (the adapter's macros write it in the dialect) on DuckDB."""
            import sqlglot

            duckdb_sql = ";\n".join(sqlglot.transpile(sql, read=dialect, write="duckdb"))
            return super().execute(duckdb_sql, auto_begin=auto_begin, fetch=fetch, limit=limit)

        def build_catalog_relation(self, model: Any) -> Any:
            """dbt-databricks names a model's catalog from here; the stand-in has one, ``golden``."""
            from types import SimpleNamespace

            return SimpleNamespace(catalog_name="golden")

        def list_relations_without_caching(self, schema_relation: Any) -> list[Any]:
            """No model was built yet: every build renders as the first (full) one."""
            return []

        @available
        def has_dbr_capability(self, name: str) -> bool:
            """dbt-databricks asks which SQL the runtime has: a current one has all of it."""
            return True

        @classmethod
        def quote(cls, identifier: str) -> str:
            return f"{quote}{identifier}{quote}"

        @classmethod
        def type(cls) -> str:
            return dialect

    Adapter.__name__ = f"{dialect.capitalize()}StubAdapter"
    include: Any = unpacked / "dbt" / "include" / dialect
    return AdapterPlugin(adapter=Adapter, credentials=Credentials, include_path=str(include), dependencies=parents)
