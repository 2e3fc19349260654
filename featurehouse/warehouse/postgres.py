"""Postgres: the database of a dbt-postgres target, read with psycopg 3.

Results are streamed with COPY ... TO STDOUT and parsed by pyarrow's CSV reader, and an
entity_df goes in with COPY ... FROM STDIN written by pyarrow's CSV writer: never row by row.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import WarehouseError
from featurehouse.warehouse.base import SPINE_PLACEHOLDER, Warehouse, first_line, select_from

if TYPE_CHECKING:
    import pyarrow as pa
    from psycopg import Column

_PG_TYPES = {
    "bool": "boolean",
    "int8": "smallint",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "integer",
    "uint32": "bigint",
    "uint64": "numeric",
    "float": "real",
    "double": "double precision",
    "halffloat": "real",
    "string": "text",
    "large_string": "text",
    "binary": "bytea",
    "large_binary": "bytea",
    "date32[day]": "date",
}


def postgres_type(arrow_type: pa.DataType) -> str:
    """The Postgres column type that holds ``arrow_type`` values."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return postgres_type(arrow_type.value_type) + "[]"
    if pa.types.is_dictionary(arrow_type):
        return postgres_type(arrow_type.value_type)
    return _PG_TYPES.get(str(arrow_type), "text")


def postgres_conninfo(config: dict[str, Any]) -> str:
    """The libpq connection string of a dbt-postgres target's settings."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        host=config.get("host", "localhost"),
        port=config.get("port", 5432),
        user=config.get("user"),
        password=config.get("password") or config.get("pass") or None,
        dbname=config.get("dbname") or config.get("database"),
        connect_timeout=config.get("connect_timeout", 10),
    )


class PostgresWarehouse(Warehouse):
    """The database of a dbt-postgres target, read with psycopg 3."""

    dialect = "postgres"
    adapter = "postgres"
    extra = "postgres"

    def __init__(self, target: DbtTarget):
        try:
            import psycopg
        except ImportError:
            # dbt-postgres brings psycopg2; featurehouse reads with psycopg 3
            raise WarehouseError(
                f"the dbt target '{target.target_name}' is Postgres, which featurehouse reads with psycopg 3: "
                "pip install 'featurehouse[postgres]'"
            ) from None

        self.target = target
        config = target.config
        database = config.get("dbname") or config.get("database", "")
        self.location = f"postgres:{config.get('host', 'localhost')}:{config.get('port', 5432)}/{database}"
        try:
            self._con = psycopg.connect(postgres_conninfo(target.config), autocommit=True)
        except psycopg.Error as error:
            reason = first_line(error)
            raise WarehouseError(f"cannot connect to the Postgres warehouse: {reason}") from None

    def type_name(self, arrow_type: pa.DataType) -> str:
        """The Postgres column type of ``arrow_type`` (see postgres_type)."""
        return postgres_type(arrow_type)

    def has_pgvector(self) -> bool | None:
        """Whether the ``vector`` extension is created in this database."""
        return self.arrow("select 1 as found from pg_extension where extname = 'vector'").num_rows > 0

    def execute(self, sql: str) -> None:
        import psycopg

        try:
            self._con.execute(sql)
        except psycopg.Error as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None

    def columns(self, sql: str) -> list[tuple[str, str]]:
        import psycopg
        from sqlglot import exp

        try:
            # a costly plan is JIT-compiled even under LIMIT 0: ~0.2 s to load LLVM, for nothing
            with self._con.transaction(), self._con.cursor() as cur:
                cur.execute("SET LOCAL jit = off")
                cur.execute(select_from(sql, [exp.Star()]).limit(0).sql(dialect=self.dialect))
                # a SELECT always describes its columns
                description = cast("list[Column]", cur.description)
                names = [d.name for d in description]
                oids = [d.type_code for d in description]
                # one round trip for all the type names, not one per column
                cur.execute(
                    "select format_type(o, null) from unnest(%s::oid[]) with ordinality as t(o, i) order by i", (oids,)
                )
                types = [row[0] for row in cur.fetchall()]
        except psycopg.Error as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None
        return list(zip(names, types))

    def arrow(self, sql: str) -> pa.Table:
        """Stream the result through COPY TO STDOUT (CSV), then type it with pyarrow."""
        import psycopg
        import pyarrow as pa
        import pyarrow.csv as pacsv
        from sqlglot import exp

        columns = self.columns(sql)
        select = select_from(
            sql,
            [
                # arrays travel as JSON text, bytea as hex; both are decoded below
                exp.cast(exp.func("to_json", exp.column(name, quoted=True)), "text").as_(name, quoted=True)
                if kind.endswith("[]")
                else exp.column(name, quoted=True)
                for name, kind in columns
            ],
        ).sql(dialect=self.dialect)
        buffer = io.BytesIO()
        try:
            # JIT compiling featurehouse's joins cost ~16% of their time and never paid back:
            # off for this statement's transaction only, whatever the server's setting
            with self._con.transaction(), self._con.cursor() as cur:
                cur.execute("SET LOCAL jit = off")
                # COPY stays text around the sqlglot-built query (its TO STDOUT form is psycopg's)
                copy_out = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER false)"
                with cur.copy(copy_out) as copy:
                    for block in copy:
                        buffer.write(block)
        except psycopg.Error as error:
            raise WarehouseError(f"the warehouse query failed: {first_line(error)}") from None
        arrow_types = {name: _arrow_type(kind) for name, kind in columns}
        names = [name for name, _ in columns]
        if not names:
            return pa.table({})
        read_types = {n: (pa.string() if _needs_decoding(arrow_types[n]) else arrow_types[n]) for n in names}
        if buffer.tell() == 0:
            return pa.table({n: pa.array([], type=arrow_types[n]) for n in names})
        buffer.seek(0)
        table = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                # Postgres writes NULL as an empty unquoted field and nothing else: the text
                # 'NULL' and the float NaN (pyarrow's default null markers) are values
                column_types=read_types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        for i, name in enumerate(names):
            if _needs_decoding(arrow_types[name]):
                table = table.set_column(i, name, _decode(table.column(name), arrow_types[name]))
        return table

    @contextlib.contextmanager
    def spine(self, table: pa.Table) -> Iterator[str]:
        import psycopg
        from sqlglot import exp

        spine = exp.to_table(SPINE_PLACEHOLDER)
        # `this` for sqlglot < 30, `tables` since
        drop = exp.Drop(this=spine, tables=[spine.copy()], kind="TABLE", exists=True).sql(dialect=self.dialect)
        create = exp.Create(
            this=exp.Schema(
                this=spine.copy(),
                expressions=[
                    exp.ColumnDef(
                        this=exp.to_identifier(f.name, quoted=True),
                        kind=exp.DataType.build(self.type_name(f.type), dialect=self.dialect),
                    )
                    for f in table.schema
                ],
            ),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        ).sql(dialect=self.dialect)
        # COPY ... FROM STDIN stays text around the sqlglot-built table and column names
        target = exp.Schema(
            this=spine.copy(), expressions=[exp.to_identifier(f.name, quoted=True) for f in table.schema]
        ).sql(dialect=self.dialect)
        try:
            self._con.execute(drop)
            self._con.execute(create)
            with self._con.cursor() as cur:
                if _csv_copyable(table.schema):
                    _copy_csv(cur, f"COPY {target} FROM STDIN WITH (FORMAT csv)", table)
                else:
                    with cur.copy(f"COPY {target} FROM STDIN") as copy:
                        for batch in table.to_batches(max_chunksize=50_000):
                            for row in zip(*(col.to_pylist() for col in batch.columns)):
                                copy.write_row(row)
            self._con.execute(f"ANALYZE {SPINE_PLACEHOLDER}")
        except psycopg.Error as error:
            raise WarehouseError(f"cannot load the entity rows into Postgres: {first_line(error)}") from None
        try:
            yield SPINE_PLACEHOLDER
        finally:
            with contextlib.suppress(psycopg.Error):
                self._con.execute(drop)

    def close(self) -> None:
        self._con.close()


def _csv_copyable(schema: pa.Schema) -> bool:
    """Whether pyarrow's CSV writer writes every column as Postgres' COPY (FORMAT csv) reads it:
    numbers, booleans, text (an empty string quoted, NULL an empty field), dates, timestamps
    (zoned ones with their offset). Others (lists, bytes) go row by row, and so do nanosecond
    timestamps, which Postgres would round to microseconds where featurehouse floors them."""
    import pyarrow as pa

    return all(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (pa.types.is_timestamp(t) and t.unit != "ns")
        or pa.types.is_date32(t)
        for t in schema.types
    )


def _copy_csv(cursor: Any, statement: str, table: pa.Table) -> None:
    """COPY ``table`` in through pyarrow's CSV writer, in blocks: the upload costs about what the
    server takes to parse it, where writing rows from Python took ~15% of a warm call."""
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, batch_size=65_536)
    with cursor.copy(statement) as copy:
        for batch in table.to_batches(max_chunksize=262_144):
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, options)
            copy.write(buffer.getbuffer())


def _arrow_type(pg_type: str) -> pa.DataType:
    import pyarrow as pa

    base = pg_type.removesuffix("[]")
    scalar = {
        "boolean": pa.bool_(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "double precision": pa.float64(),
        "text": pa.string(),
        "character varying": pa.string(),
        "bytea": pa.binary(),
        "date": pa.date32(),
        "timestamp without time zone": pa.timestamp("us"),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    }
    kind = scalar.get(base)
    if kind is None:
        kind = pa.float64() if base.startswith("numeric") else pa.string()
        if base.startswith("character"):
            kind = pa.string()
    return pa.list_(kind) if pg_type.endswith("[]") else kind


def _needs_decoding(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_list(kind) or pa.types.is_binary(kind)


def _decode(column: pa.ChunkedArray, kind: pa.DataType) -> pa.Array:
    import json

    import pyarrow as pa

    values = column.to_pylist()
    if pa.types.is_binary(kind):
        return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in values], type=kind)
    return pa.array([None if v is None else json.loads(v) for v in values], type=kind)
