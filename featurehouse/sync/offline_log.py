"""The offline push log: rows pushed with ``to="offline"`` / ``"online_and_offline"``.

Append-only, read by the feature views' models beside the batch source (the
``featurehouse.push_log`` macro), so that the next training set and the next
``dbt build`` + ``sync`` see the pushed rows (docs/decisions/0022):

- DuckDB: one parquet file per pushed batch in ``data/push_log/<push source>/``, written
  to a hidden temporary file, flushed to disk and renamed into place, so a crash leaves
  no partial file (the model reads ``*.parquet`` only);
- Postgres: the table ``<target schema>._fh_push_<push source>``, one transaction per batch.

A batch is named by a hash of its rows as they were given: pushing the same rows again
(a retry after a failure) replaces the batch instead of adding a second copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from featurehouse.errors import ConfigError, WarehouseError
from featurehouse.spec.push import ARRIVED_AT

if TYPE_CHECKING:
    import pyarrow as pa

    from featurehouse.dbt.profile import DbtTarget

LOG_DIR = "data/push_log"  # relative to the repo root, where dbt runs
TABLE_PREFIX = "_fh_push_"
BATCH_COLUMN = "__fh_batch"


def log_folder(root: Path, push_source: str) -> Path:
    """The folder holding the parquet files of ``push_source`` (DuckDB targets)."""
    return root / LOG_DIR / push_source


def log_table(push_source: str) -> str:
    """The Postgres table of ``push_source``'s log (in the dbt target's schema)."""
    return TABLE_PREFIX + push_source


def batch_id(rows: pa.Table) -> str:
    """The name of a batch: a hash of its rows (Arrow IPC bytes), so a retry names the same batch."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:32]


def append(target: DbtTarget, root: Path, push_source: str, rows: pa.Table, batch: str) -> None:
    """Append ``rows`` (the push schema's columns and ``__fh_arrived_at``) to the log as batch ``batch``."""
    if target.type == "duckdb":
        _append_file(log_folder(root, push_source), rows, batch)
    elif target.type == "postgres":
        _append_table(target, push_source, rows, batch)
    else:
        raise ConfigError(
            f"pushing offline is supported on DuckDB and Postgres targets, not {target.type!r}; push with to='online'"
        )


def _append_file(folder: Path, rows: pa.Table, batch: str) -> None:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{batch}.parquet"
    temporary = folder / f".{batch}.{uuid.uuid4().hex}.tmp"  # hidden, not *.parquet: never read
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(rows, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)  # atomic: readers see no file or the whole file
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the rename itself survives a power cut
        finally:
            os.close(descriptor)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise WarehouseError(f"cannot write the push log {final}: {error}") from None


def _pg_types(rows: pa.Table) -> list[tuple[str, str]]:
    from featurehouse.warehouse import postgres_type

    return [(field.name, postgres_type(field.type)) for field in rows.schema]


def _append_table(target: DbtTarget, push_source: str, rows: pa.Table, batch: str) -> None:
    import io

    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from sqlglot import exp

    from featurehouse.warehouse import postgres_conninfo

    table = exp.table_(log_table(push_source), db=target.schema, quoted=True)
    columns = [*_pg_types(rows), (BATCH_COLUMN, "text")]
    create = exp.Create(
        this=exp.Schema(
            this=table.copy(),
            expressions=[
                exp.ColumnDef(this=exp.to_identifier(n, quoted=True), kind=exp.DataType.build(t, dialect="postgres"))
                for n, t in columns
            ],
        ),
        kind="TABLE",
        exists=True,
    ).sql(dialect="postgres")
    delete = exp.delete(table.copy(), where=exp.column(BATCH_COLUMN, quoted=True).eq(batch)).sql(dialect="postgres")
    names = exp.Tuple(expressions=[exp.column(n, quoted=True) for n, _ in columns]).sql(dialect="postgres")
    copy_sql = "COPY " + table.sql(dialect="postgres") + " " + names + " FROM STDIN WITH (FORMAT csv)"
    data = rows.append_column(BATCH_COLUMN, pa.array([batch] * rows.num_rows, pa.string()))
    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    try:
        with psycopg.connect(postgres_conninfo(target.config), autocommit=True, connect_timeout=10) as con:
            con.execute("SET TIME ZONE 'UTC'")
            con.execute(
                exp.Create(this=exp.to_identifier(target.schema, quoted=True), kind="SCHEMA", exists=True).sql(
                    "postgres"
                )
            )
            con.execute(create)
            with con.transaction():  # the batch replaces an earlier copy of itself, whole or not at all
                con.execute(delete)
                with con.cursor() as cur, cur.copy(copy_sql) as copy:
                    copy.write(buffer.getbuffer())
    except psycopg.Error as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WarehouseError(
            f"cannot append to the push log {target.schema}.{log_table(push_source)}: {text}"
        ) from None


def last_offline_push(target: DbtTarget, root: Path, push_source: str) -> datetime | None:
    """When the newest batch in ``push_source``'s log arrived (None: the log is empty)."""
    if target.type == "duckdb":
        folder = log_folder(root, push_source)
        times = [p.stat().st_mtime for p in folder.glob("*.parquet")] if folder.is_dir() else []
        return datetime.fromtimestamp(max(times), timezone.utc) if times else None
    if target.type == "postgres":
        import psycopg
        from sqlglot import exp

        from featurehouse.warehouse import postgres_conninfo

        table = exp.table_(log_table(push_source), db=target.schema, quoted=True)
        newest = exp.select(exp.Max(this=exp.column(ARRIVED_AT, quoted=True))).from_(table).sql(dialect="postgres")
        try:
            with psycopg.connect(postgres_conninfo(target.config), autocommit=True, connect_timeout=5) as con:
                row = con.execute(newest).fetchone()
        except psycopg.Error:
            return None  # no log table yet, or the warehouse is out of reach: describe shows none
        value = row[0] if row else None
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value
    return None
