"""The Postgres online store (psycopg 3).

Layout, in the schema ``online_store.schema`` (default ``featurehouse_online``): one table
per feature view, named after the view, with typed columns — the join keys (primary
key), ``event_timestamp`` and ``created_timestamp`` (timestamptz), one column per feature
(bigint, integer, real, double precision, boolean, text, bytea, timestamptz, T[]) — so
any BI tool can read it. The sync state is the table ``_featurehouse_sync_state``.

A sync of a view is one transaction: COPY the changed rows into a temporary table, then
``INSERT ... ON CONFLICT DO UPDATE ... WHERE <newer>`` and update the state. A full
refresh COPYs into a new table and swaps it in within the same transaction. The sync lock
is a session advisory lock, which the server releases when the syncing process dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import (
    INVALID,
    Connections,
    Progress,
    Reader,
    ViewRows,
    busy,
    held,
    lock_owner,
    reason,
    redact_url,
    report_corrupt,
    rows_to_write,
    spread,
    synced_mask,
    wait_for,
)
from featurehouse.sync.layout import STATE_TABLE, SyncState, ViewLayout, check_push_target, pushed_state
from featurehouse.sync.search_types import check_vectors
from featurehouse.sync.sql_store import SQLBackend, SQLDialect, literal, quote

if TYPE_CHECKING:
    from datetime import datetime

    import numpy as np
    import psycopg
    import pyarrow as pa

    from featurehouse.sync.postgres_vectors import Searcher
    from featurehouse.sync.search_types import SearchHit, SearchRequest

BATCH_ROWS = 100_000
LOCK_CLASS = 0x6668  # "fh": the first key of the two-key advisory lock


def _order(expression: str, dtype: str) -> str:
    # byte-wise, as DuckDB and the point-in-time macro compare strings
    return f'{expression} COLLATE "C"' if dtype == "string" else expression


DIALECT = SQLDialect(
    types={
        "bool": "boolean",
        "int32": "integer",
        "int64": "bigint",
        "float32": "real",
        "float64": "double precision",
        "string": "text",
        "bytes": "bytea",
        "timestamp": "timestamptz",
    },
    array=lambda element: element + "[]",
    placeholder="%s",
    # fillfactor 90: room in each page for an incremental sync's updates to stay on the page
    # (HOT updates, no new index entry): the upsert of 1% of a million rows takes half the time
    table_options="WITH (fillfactor = 90)",
    distinct=lambda a, b: f"{a} IS NOT DISTINCT FROM {b}",
    order=_order,
)


APPLICATION = "featurehouse sync: "  # then the lock owner: busy() names it


def _open(url: str, application: str, timeout: float | None = None) -> psycopg.Connection:
    import math

    import psycopg

    # libpq counts connect_timeout in whole seconds and treats 1 as 2
    con = psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(2, math.ceil(timeout)) if timeout else 10,
        application_name=application[:63],
    )
    con.execute("SET TIME ZONE 'UTC'")
    if timeout:  # a locked table or a slow plan ends server-side too, not only in the caller
        con.execute(f"SET statement_timeout = {max(1, round(timeout * 1000))}")
    return con


class PostgresBackend(SQLBackend):
    """Writes the online store into a Postgres schema: one table per view and a state table."""

    dialect = DIALECT

    def __init__(self, url: str, schema: str):
        self.url = url
        self.schema = schema
        self.description = f"the Postgres online store {redact_url(url)} (schema {schema})"
        self._con: psycopg.Connection | None = None
        self._searcher: Searcher | None = None  # vector search's own connection (postgres_vectors)

    def table(self, name: str) -> str:
        return f"{quote(self.schema)}.{quote(name)}"

    def connect(self) -> None:
        import psycopg

        if self._con is not None:
            return
        try:
            self._con = _open(self.url, APPLICATION + lock_owner())
            for attempt in range(5):  # IF NOT EXISTS races with another process creating it (a push, a sync)
                try:
                    self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
                    self._con.execute(self.state_table_sql())
                    break
                except psycopg.errors.UniqueViolation:
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        except psycopg.Error as error:
            self._con = None
            raise OnlineStoreError(f"cannot reach {self.description}: {reason(error, self.url)}") from None

    def _lock_key(self) -> int:
        digest = hashlib.sha256(f"featurehouse sync {self.schema}".encode()).digest()
        return int.from_bytes(digest[:4], "big", signed=True)

    @contextlib.contextmanager
    def lock(self, wait: float) -> Iterator[None]:
        key = self._lock_key()

        def attempt() -> bool:
            return bool(self.con.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, key)).fetchone()[0])

        def owner() -> str:
            row = self.con.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s::oid AND l.granted",
                (LOCK_CLASS, key & 0xFFFFFFFF),
            ).fetchone()
            return row[0].removeprefix(APPLICATION) if row else ""

        wait_for(wait, attempt, lambda: busy(self.description, owner(), wait))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.con.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))

    # ---- writes ------------------------------------------------------------------------
    def preflight(self, layouts: Sequence[ViewLayout]) -> None:
        """pgvector, when a view has a vector index: a missing extension stops the sync before any view is written."""
        vector_views = [layout for layout in layouts if layout.vector is not None]
        if vector_views:
            from featurehouse.sync import postgres_vectors

            postgres_vectors.ensure_pgvector(self.con, vector_views[0], self.description)

    def write(
        self, layout: ViewLayout, table: pa.Table, changed: np.ndarray | None, state: SyncState, progress: Progress
    ) -> int:
        import psycopg

        con = self.con
        self.kept = 0
        target = self.table(layout.name)
        names = ", ".join(quote(c) for c in layout.columns)
        written = 0
        if layout.vector is not None:  # pgvector created (or one sentence), vectors checked: before any write
            from featurehouse.sync import postgres_vectors

            postgres_vectors.ensure_pgvector(con, layout, self.description)
            check_vectors(layout, table)
        try:
            with con.transaction():
                if changed is None:
                    temporary = "_fh_build_" + hashlib.sha256(layout.name.encode()).hexdigest()[:16]
                    building = self.table(temporary)
                    con.execute(f"DROP TABLE IF EXISTS {building}")
                    con.execute(self.create_table_sql(layout, building, constraint=temporary + "_pkey"))
                    written = _copy(con, building, names, table, layout, progress)
                    if layout.vector is not None:  # built on the full table, then renamed with it
                        postgres_vectors.create_index(con, self.schema, temporary, temporary + "_hnsw", layout, written)
                    con.execute(f"DROP TABLE IF EXISTS {target}")
                    con.execute(f"ALTER TABLE {building} RENAME TO {quote(layout.name)}")
                    con.execute(
                        f"ALTER TABLE {target} RENAME CONSTRAINT {quote(temporary + '_pkey')} "
                        f"TO {quote(layout.name + '_pkey')}"
                    )
                    if layout.vector is not None:
                        postgres_vectors.rename_index(
                            con, self.schema, temporary + "_hnsw", postgres_vectors.index_name(layout)
                        )
                else:
                    con.execute(self.create_table_sql(layout, target, if_not_exists=True))
                    if layout.vector is not None:  # maintained by the upsert like any index
                        name = postgres_vectors.index_name(layout)
                        postgres_vectors.create_index(con, self.schema, layout.name, name, layout, 0, True)
                    rows = rows_to_write(table, changed)
                    if rows.num_rows:
                        con.execute(f"CREATE TEMPORARY TABLE _fh_stage (LIKE {target}) ON COMMIT DROP")
                        _copy(con, "_fh_stage", names, rows, layout, progress)
                        keys = ", ".join(quote(k) for k in layout.join_keys)
                        # in key order, the index probes walk the primary key instead of jumping
                        # around it: ~20% faster for 1% of a million rows
                        cur = con.execute(
                            self.upsert_sql(layout, target, f"SELECT {names} FROM _fh_stage ORDER BY {keys}")
                        )
                        written = cur.rowcount
                        if written < rows.num_rows:  # which of the others lost to a stored row that beats them
                            on = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in layout.join_keys)
                            cols = ", ".join(f"s.{quote(c)}" for c in layout.columns)
                            stored = ", ".join(f"t.{quote(c)}" for c in layout.columns)
                            self.kept = con.execute(
                                f"SELECT count(*) FROM _fh_stage s JOIN {target} t ON {on} "
                                f"WHERE ROW({cols}) IS DISTINCT FROM ROW({stored})"
                            ).fetchone()[0]
                self.save_state(state)
        except psycopg.Error as error:
            raise OnlineStoreError(
                f"writing {layout.name} to {self.description} failed: {reason(error, self.url)}"
            ) from None
        return written

    def push_rows(self, layout: ViewLayout, table: pa.Table, pushed_at: datetime) -> int:
        import psycopg

        try:
            return self._push_rows(layout, table, pushed_at)
        except OnlineStoreError as error:  # a table created by a sync at the same moment: once more
            if not isinstance(error.__cause__, psycopg.errors.UniqueViolation):
                raise
            return self._push_rows(layout, table, pushed_at)

    def _push_rows(self, layout: ViewLayout, table: pa.Table, pushed_at: datetime) -> int:
        import psycopg

        con = self.con
        self.kept = 0
        target = self.table(layout.name)
        names = ", ".join(quote(c) for c in layout.columns)
        written = 0
        if layout.vector is not None:  # as in write(): pgvector created, vectors checked, before any write
            from featurehouse.sync import postgres_vectors

            postgres_vectors.ensure_pgvector(con, layout, self.description)
            check_vectors(layout, table)
        try:
            with con.transaction():  # one transaction: a killed push leaves nothing of itself
                state = self.read_state(layout)
                check_push_target(layout, state, self.description)
                con.execute(self.create_table_sql(layout, target, if_not_exists=True))
                if table.num_rows:
                    con.execute(f"CREATE TEMPORARY TABLE _fh_push (LIKE {target}) ON COMMIT DROP")
                    _copy(con, "_fh_push", names, table, layout, lambda rows: None)
                    keys = ", ".join(quote(k) for k in layout.join_keys)
                    cur = con.execute(self.upsert_sql(layout, target, f"SELECT {names} FROM _fh_push ORDER BY {keys}"))
                    written = cur.rowcount
                    if written < table.num_rows:
                        on = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in layout.join_keys)
                        cols = ", ".join(f"s.{quote(c)}" for c in layout.columns)
                        stored = ", ".join(f"t.{quote(c)}" for c in layout.columns)
                        self.kept = con.execute(
                            f"SELECT count(*) FROM _fh_push s JOIN {target} t ON {on} "
                            f"WHERE ROW({cols}) IS DISTINCT FROM ROW({stored})"
                        ).fetchone()[0]
                if state is None:
                    self.save_state_if_missing(pushed_state(layout, pushed_at))
                self.save_push(layout.name, pushed_at, table.num_rows)
        except psycopg.Error as error:
            failure = OnlineStoreError(
                f"pushing to {layout.name} in {self.description} failed: {reason(error, self.url)}"
            )
            failure.__cause__ = error if isinstance(error, psycopg.errors.UniqueViolation) else None
            failure.__suppress_context__ = True
            raise failure from failure.__cause__
        return written

    def create_table_sql(
        self, layout: ViewLayout, table: str, if_not_exists: bool = False, constraint: str | None = None
    ) -> str:
        """The view's CREATE TABLE; a vector feature's column is pgvector's ``vector(n)`` (postgres_vectors)."""
        statement = super().create_table_sql(layout, table, if_not_exists, constraint)
        if layout.vector is None:
            return statement
        from featurehouse.sync.postgres_vectors import retype_vector_column

        return retype_vector_column(statement, layout, DIALECT.column_type("array<float32>"), self.con)

    def reader(self, timeout: float | None = None) -> PostgresReader:
        return PostgresReader(self.url, self.schema, timeout)

    def search(self, layout: ViewLayout, request: SearchRequest) -> list[SearchHit]:
        """Top-k through pgvector's HNSW index, or exact (featurehouse/sync/postgres_vectors.py)."""
        if self._searcher is None:
            from featurehouse.sync.postgres_vectors import Searcher

            def connect() -> psycopg.Connection:
                con = _open(self.url, "featurehouse vector search")
                _tolerate_bad_timestamps(con)
                return con

            self._searcher = Searcher(self.url, self.schema, self.description, connect, DIALECT.column_type)
        return self._searcher.search(layout, request)

    def close(self) -> None:
        if self._searcher is not None:
            with contextlib.suppress(Exception):
                self._searcher.close()
            self._searcher = None
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None


def _copy(
    con: psycopg.Connection, table: str, names: str, rows: pa.Table, layout: ViewLayout, progress: Progress
) -> int:
    """COPY ``rows`` as CSV written by Arrow (vectorised, no Python loop per value)."""
    import pyarrow.csv as pacsv

    from featurehouse.sync.postgres_vectors import copy_dtypes, vector_text

    # a vector feature goes as pgvector's text '[x,y,...]' (vector_text), not as an array literal
    dtypes = [*layout.key_dtypes, "timestamp", "timestamp", *copy_dtypes(layout)]
    options = pacsv.WriteOptions(include_header=False, batch_size=BATCH_ROWS)
    with con.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
        for batch in rows.to_batches(max_chunksize=BATCH_ROWS):
            buffer = io.BytesIO()
            pacsv.write_csv(_csv_ready(vector_text(batch, layout), dtypes), buffer, options)
            copy.write(buffer.getbuffer())
            progress(batch.num_rows)
    return rows.num_rows


def _csv_ready(batch: pa.RecordBatch, dtypes: list[str]) -> pa.RecordBatch:
    """Arrays as Postgres array literals, bytes as \\x hex: the forms COPY's CSV format reads."""
    import pyarrow as pa

    if not any(d == "bytes" or d.startswith("array<") for d in dtypes):
        return batch
    columns = []
    for column, dtype in zip(batch.columns, dtypes):
        if dtype == "bytes":
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()], pa.string())
        elif dtype.startswith("array<"):
            column = pa.array([None if v is None else _array_literal(v) for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _array_literal(values: list[Any]) -> str:
    def element(value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, bytes):
            value = "\\x" + value.hex()
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    return "{" + ",".join(element(v) for v in values) + "}"


# ---- reads -------------------------------------------------------------------------------------------
def _tolerate_bad_timestamps(con: psycopg.Connection) -> None:
    """Load a timestamptz Python cannot hold (infinity, past year 9999) as INVALID instead of failing the batch."""
    import psycopg
    from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

    class Binary(TimestamptzBinaryLoader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except psycopg.DataError:
                return INVALID

    class Text(TimestamptzLoader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except psycopg.DataError:
                return INVALID

    con.adapters.register_loader("timestamptz", Binary)
    con.adapters.register_loader("timestamptz", Text)


class _Variant:
    """The SELECTs for the requested features the store holds (by one state signature)."""

    __slots__ = ("sql", "sql_one", "positions", "unsynced", "timestamps")

    def __init__(self, schema: str, layout: ViewLayout, features: Sequence[str], mask: Sequence[bool]):
        self.positions, self.unsynced = held(mask)
        read = [features[i] for i in self.positions]
        self.timestamps = True  # event_timestamp is one
        # the state's signature, in the same statement: the rows and the layout they were written by agree
        signature = f"(SELECT signature FROM {quote(schema)}.{quote(STATE_TABLE)} WHERE view = {literal(layout.name)})"
        # array<float32> as real[]: a vector feature's pgvector column reads back like any float array
        cols = ", ".join(
            [
                signature,
                *(quote(c) for c in [*layout.join_keys, "event_timestamp"]),
                *(quote(c) + "::real[]" if layout.dtype(c) == "array<float32>" else quote(c) for c in read),
            ]
        )
        table = f"{quote(schema)}.{quote(layout.name)}"
        # one entity: a plain equality per key, whose prepared plan is a primary-key lookup
        self.sql_one = f"SELECT {cols} FROM {table} WHERE " + " AND ".join(
            f"{quote(k)} = %s::{DIALECT.column_type(d)}" for k, d in zip(layout.join_keys, layout.key_dtypes)
        )
        if len(layout.join_keys) == 1:
            key = layout.join_keys[0]
            array_type = DIALECT.column_type(layout.key_dtypes[0])
            self.sql = f"SELECT {cols} FROM {table} WHERE {quote(key)} = ANY(%s::{array_type}[])"
        else:
            arrays = ", ".join(f"%s::{DIALECT.column_type(d)}[]" for d in layout.key_dtypes)
            keys = ", ".join(quote(k) for k in layout.join_keys)
            self.sql = f"SELECT {cols} FROM {table} WHERE ({keys}) IN (SELECT * FROM unnest({arrays}))"


class _Prepared:
    __slots__ = ("schema", "layout", "features", "nkeys", "variants", "current")

    def __init__(self, schema: str, layout: ViewLayout, features: Sequence[str]):
        self.schema = schema
        self.layout = layout
        self.features = list(features)
        self.nkeys = len(layout.join_keys)
        self.variants = {layout.signature: _Variant(schema, layout, features, [True] * len(features))}
        self.current = layout.signature  # the state signature last seen


class PostgresReader(Reader):
    """One connection per thread; statements are prepared server-side and results are binary."""

    def __init__(self, url: str, schema: str, timeout: float | None = None):
        self.url = url
        self.schema = schema
        self.timeout = timeout
        self._connections = Connections()

    def _con(self) -> psycopg.Connection:
        import psycopg

        con = self._connections.get()
        if con is None or con.closed:
            try:
                con = _open(self.url, "featurehouse online reads", self.timeout)
            except psycopg.Error as error:
                raise OnlineStoreError(
                    f"cannot reach the Postgres online store {redact_url(self.url)}: {reason(error, self.url)}"
                ) from None
            con.prepare_threshold = 0
            _tolerate_bad_timestamps(con)
            self._connections.add(con)
        return con

    def prepare(self, layout: ViewLayout, features: Sequence[str]) -> _Prepared:
        return _Prepared(self.schema, layout, features)

    def interrupt(self, thread_id: int) -> None:
        # A frozen server never answers and never applies statement_timeout: shut the
        # socket down under the blocked thread, whose libpq then sees the connection end.
        import os
        import socket

        con = self._connections.interrupt(thread_id)
        if con is None or con.closed:
            return
        with contextlib.suppress(Exception):
            sock = socket.socket(fileno=os.dup(con.pgconn.socket))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()  # the duplicate only

    def ping(self) -> None:
        import psycopg

        for attempt in (0, 1):  # a retry for a connection the server dropped since its last use
            old = self._connections.get()
            con = self._con()
            try:
                con.execute("SELECT 1")
                return
            except psycopg.Error as error:
                self._connections.drop()
                if attempt or old is not con or not con.broken:
                    raise OnlineStoreError(
                        f"the Postgres online store {redact_url(self.url)} does not answer: {reason(error, self.url)}"
                    ) from None

    def read(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[Any]:
        # One retry on a new connection when this thread's old one turns out dead (the server
        # restarted since its last use); none after an interrupt (the caller's deadline passed).
        old = self._connections.get()
        self._connections.clear_interrupt()
        try:
            return self._read_once(requests)
        except OnlineStoreError:
            if old is None or (old.closed is False and not old.broken) or self._connections.interrupted():
                raise
        return self._read_once(requests)

    def _read_once(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[Any]:
        import psycopg

        con = self._con()
        variants: list[Any] = [prepared.variants[prepared.current] for prepared, _ in requests]
        try:
            try:
                if len(requests) == 1:
                    fetched: list[Any] = [self._fetch(con, *requests[0], variants[0])]
                else:
                    with con.pipeline():
                        cursors = [
                            self._execute(con, prepared, keys, variant)
                            for (prepared, keys), variant in zip(requests, variants)
                        ]
                    fetched = [c.fetchall() if c is not None else None for c in cursors]
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                # a view never synced, or synced by another definition: read them one by one
                fetched = [False] * len(requests)
            for i, (prepared, keys) in enumerate(requests):
                rows = fetched[i]
                if rows is False:
                    try:
                        rows = self._fetch(con, prepared, keys, variants[i])
                    except psycopg.errors.UndefinedTable:
                        rows = None
                    except psycopg.errors.UndefinedColumn:
                        rows = False
                if rows is False or (rows and rows[0][0] != prepared.current):
                    variants[i] = self._variant(con, prepared)
                    try:
                        rows = None if variants[i] is None else self._fetch(con, prepared, keys, variants[i])
                    except psycopg.errors.UndefinedColumn as error:
                        raise OnlineStoreError(
                            f"the Postgres online store {redact_url(self.url)} is damaged: table "
                            f"'{prepared.layout.name}' lacks a column its sync state records ({reason(error)}); "
                            f"run 'featurehouse sync --full-refresh --views {prepared.layout.name}'"
                        ) from None
                fetched[i] = rows
        except psycopg.Error as error:
            self._connections.drop()
            raise OnlineStoreError(
                f"reading the Postgres online store {redact_url(self.url)} failed: {reason(error, self.url)}"
            ) from None
        results: list[Any] = []
        for (prepared, keys), rows, variant in zip(requests, fetched, variants):
            if rows is None or variant is None:  # never synced
                results.append(None)
                continue
            n = prepared.nkeys
            if variant.timestamps:  # a timestamp psycopg cannot hold (past year 9999, infinity) is INVALID
                rows = [self._checked(prepared, variant, r) for r in rows]
            if variant.unsynced:
                positions, width = variant.positions, len(prepared.features)
                found = {tuple(r[1 : n + 1]): (r[n + 1], spread(r[n + 2 :], positions, width)) for r in rows}
            else:
                found = {tuple(r[1 : n + 1]): (r[n + 1], list(r[n + 2 :])) for r in rows}
            results.append(ViewRows([found.get(k) for k in keys], variant.unsynced))
        return results

    def _checked(self, prepared: _Prepared, variant: _Variant, row: Any) -> Any:
        n = prepared.nkeys
        if not any(v is INVALID or (type(v) is list and INVALID in v) for v in row[n + 1 :]):
            return row
        where = f"the Postgres online store {redact_url(self.url)}"
        key = tuple(row[1 : n + 1])
        if row[n + 1] is INVALID:
            report_corrupt(where, prepared.layout.name, key, "event_timestamp", "infinity or past 9999", "out of range")
            return (*row[: n + 1], INVALID, *([None] * len(variant.positions)))
        values = list(row)
        for j, v in enumerate(row[n + 2 :]):
            if v is INVALID or (type(v) is list and INVALID in v):
                report_corrupt(
                    where,
                    prepared.layout.name,
                    key,
                    prepared.features[variant.positions[j]],
                    "infinity or past 9999",
                    "out of range",
                )
                values[n + 2 + j] = INVALID
        return values

    def _variant(self, con: psycopg.Connection, prepared: _Prepared) -> _Variant | None:
        """The variant for the view's current sync state (None: no state, never synced)."""
        row = con.execute(
            f"SELECT signature, state FROM {quote(self.schema)}.{quote(STATE_TABLE)} WHERE view = %s",
            (prepared.layout.name,),
        ).fetchone()
        if row is None:
            return None
        signature = row[0]
        variant = prepared.variants.get(signature)
        if variant is None:
            state = SyncState.from_bytes(bytes(row[1]), prepared.layout.name)
            mask = synced_mask(
                prepared.layout, prepared.features, signature, state.features if state is not None else None
            )
            variant = prepared.variants[signature] = _Variant(self.schema, prepared.layout, prepared.features, mask)
        prepared.current = signature
        return variant

    @staticmethod
    def _query(prepared: _Prepared, keys: Sequence[tuple[Any, ...]], variant: _Variant) -> tuple[str, Sequence[Any]]:
        if len(keys) == 1:
            return variant.sql_one, keys[0]
        if prepared.nkeys == 1:
            return variant.sql, [[k[0] for k in keys]]
        return variant.sql, [list(column) for column in zip(*keys)]

    def _execute(
        self, con: psycopg.Connection, prepared: _Prepared, keys: Sequence[tuple[Any, ...]], variant: _Variant
    ) -> Any:
        cur = con.cursor(binary=True)
        cur.execute(*self._query(prepared, keys, variant), prepare=True)
        return cur

    def _fetch(
        self, con: psycopg.Connection, prepared: _Prepared, keys: Sequence[tuple[Any, ...]], variant: _Variant
    ) -> list[Any]:
        cur = getattr(self._connections.local, "cursor", None)
        if cur is None or cur.closed or cur.connection is not con:
            cur = self._connections.local.cursor = con.cursor(binary=True)
        cur.execute(*self._query(prepared, keys, variant), prepare=True)
        return cur.fetchall()

    def close(self) -> None:
        self._connections.close(lambda con: con.close())
