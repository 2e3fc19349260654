"""The embedded SQLite online store (stdlib ``sqlite3``, WAL mode).

Layout: one table per feature view, named after the view, with the join keys (primary
key), ``event_timestamp`` and ``created_timestamp`` (TEXT 'YYYY-MM-DD HH:MM:SS.ffffff',
UTC) and one column per feature (INTEGER for ints and bools, REAL for floats, TEXT for
strings and timestamps, BLOB for bytes, JSON TEXT for arrays). The sync state is the
table ``_featurehouse_sync_state``. Every sync of a view is one transaction with its
state, so readers (WAL) see a view before or after a sync, never during one; a full
refresh builds a new table and swaps it in within that transaction.

The sync lock is an OS file lock on ``<db>.sync-lock``: the kernel releases it when the
process dies, even under kill -9.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import (
    INVALID,
    Connections,
    Progress,
    Reader,
    ViewRows,
    busy,
    decode_values,
    decoder,
    held,
    lock_owner,
    reason,
    report_corrupt,
    rows_to_write,
    spread,
    synced_mask,
    wait_for,
)
from featurehouse.sync.layout import STATE_TABLE, SyncState, ViewLayout, check_push_target, pushed_state
from featurehouse.sync.search_types import check_vectors
from featurehouse.sync.sql_store import SQLBackend, SQLDialect, insert_sql, quote

if TYPE_CHECKING:
    import sqlite3

    import numpy as np
    import pyarrow as pa

    from featurehouse.sync.search_types import SearchHit, SearchRequest
else:  # one SQLite library per process, the one that can load sqlite-vec (sqlite_vectors.sqlite_module)
    from featurehouse.sync.sqlite_vectors import sqlite_module

    sqlite3 = sqlite_module()

BATCH_ROWS = 50_000
CHUNK_KEYS = 500
DIALECT = SQLDialect(
    types={
        "bool": "INTEGER",
        "int32": "INTEGER",
        "int64": "INTEGER",
        "float32": "REAL",
        "float64": "REAL",
        "string": "TEXT",
        "bytes": "BLOB",
        "timestamp": "TEXT",
    },
    array=lambda element: "TEXT",  # JSON
    placeholder="?",
    # WITHOUT ROWID: the primary key is the table's only B-tree (half the writes, one lookup per read)
    table_options="WITHOUT ROWID",
    distinct=lambda a, b: f"{a} IS {b}",
)


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-65536")  # 64 MB: a large sync's B-tree stays in memory
    return con


class SQLiteBackend(SQLBackend):
    """Writes the online store into one SQLite file: one table per view and a state table."""

    dialect = DIALECT

    def __init__(self, path: Path):
        self.path = path
        self.description = f"the SQLite online store {path}"
        self._con: sqlite3.Connection | None = None
        self._search_connections: Connections | None = None  # per thread, read-only, sqlite-vec loaded

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self) -> None:
        if self._con is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = _connect(self.path)
            self._con.execute(self.state_table_sql())
        except (OSError, sqlite3.Error) as error:
            raise OnlineStoreError(f"cannot open {self.description}: {reason(error)}") from error

    @contextlib.contextmanager
    def lock(self, wait: float) -> Iterator[None]:
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".sync-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")

        def attempt() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        def owner() -> str:
            handle.seek(0)
            return handle.read().strip()

        try:
            wait_for(wait, attempt, lambda: busy(self.description, owner(), wait))
            handle.seek(0)
            handle.truncate()
            handle.write(lock_owner())
            handle.flush()
            yield
        finally:
            handle.close()  # releases the lock

    def stored_time(self, when: datetime) -> str:
        return when.isoformat()

    # ---- writes ------------------------------------------------------------------------
    def write(
        self, layout: ViewLayout, table: pa.Table, changed: np.ndarray | None, state: SyncState, progress: Progress
    ) -> int:
        con = self.con
        self.kept = 0
        target = quote(layout.name)
        check_vectors(layout, table)  # a vector's NaN, infinity or wrong length: refused before any write
        try:
            con.execute("BEGIN IMMEDIATE")
            if changed is None:
                building = quote(layout.name + "__fh_new")
                con.execute(f"DROP TABLE IF EXISTS {building}")
                con.execute(self.create_table_sql(layout, building))
                sql = insert_sql(self.dialect, layout, building)
            else:
                con.execute(self.create_table_sql(layout, target, if_not_exists=True))
                sql = self.upsert_sql(layout, target)
                table = rows_to_write(table, changed)
            # key order turns B-tree inserts into appends
            table = table.sort_by([(k, "ascending") for k in layout.join_keys])
            written = 0
            for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                before = con.total_changes
                con.executemany(sql, python_rows(batch, layout))
                written += con.total_changes - before
                progress(batch.num_rows)
            if changed is None:
                con.execute(f"DROP TABLE IF EXISTS {target}")
                con.execute(f"ALTER TABLE {building} RENAME TO {target}")
            elif written < table.num_rows:  # some rows lost to the stored ones: which beat them, which equal them
                self.kept = self._count_kept(con, layout, table)
            self.save_state(state)
            con.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise OnlineStoreError(f"writing {layout.name} to {self.description} failed: {reason(error)}") from error
        return written

    def push_rows(self, layout: ViewLayout, table: pa.Table, pushed_at: datetime) -> int:
        con = self.con
        self.kept = 0
        target = quote(layout.name)
        check_vectors(layout, table)  # a vector's NaN, infinity or wrong length: refused before any write
        try:
            con.execute("BEGIN IMMEDIATE")  # one transaction: a killed push leaves nothing of itself
            try:
                state = self.read_state(layout)
                check_push_target(layout, state, self.description)
                con.execute(self.create_table_sql(layout, target, if_not_exists=True))
                before = con.total_changes
                sql = self.upsert_sql(layout, target)
                for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                    con.executemany(sql, python_rows(batch, layout))
                written = con.total_changes - before
                if written < table.num_rows:
                    self.kept = self._count_kept(con, layout, table)
                if state is None:
                    self.save_state_if_missing(pushed_state(layout, pushed_at))
                self.save_push(layout.name, pushed_at, table.num_rows)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise OnlineStoreError(f"pushing to {layout.name} in {self.description} failed: {reason(error)}") from error
        return written

    @staticmethod
    def _count_kept(con: sqlite3.Connection, layout: ViewLayout, table: pa.Table) -> int:
        """Rows of ``table`` the store now holds otherwise: kept because the stored row beats them."""
        n = len(layout.join_keys)
        select = f"SELECT {', '.join(_ident(c) for c in layout.columns)} FROM {_ident(layout.name)} WHERE "
        key_sql = _ident(layout.join_keys[0]) if n == 1 else "(" + ", ".join(_ident(k) for k in layout.join_keys) + ")"
        kept = 0
        for batch in table.to_batches(max_chunksize=CHUNK_KEYS):
            rows = python_rows(batch, layout)
            if n == 1:
                where = f"{key_sql} IN ({', '.join('?' for _ in rows)})"
                params = [r[0] for r in rows]
            else:
                marks = "(" + ", ".join("?" for _ in range(n)) + ")"
                where = f"{key_sql} IN (VALUES {', '.join(marks for _ in rows)})"
                params = [v for r in rows for v in r[:n]]
            stored = {tuple(r[:n]): tuple(r) for r in con.execute(select + where, params)}
            kept += sum(1 for r in rows if stored.get(tuple(r[:n])) != tuple(r))
        return kept

    def reader(self, timeout: float | None = None) -> SQLiteReader:
        return SQLiteReader(self.path, timeout)

    def search(self, layout: ViewLayout, request: SearchRequest) -> list[SearchHit]:
        """An exact top-k scan with sqlite-vec (featurehouse/sync/sqlite_vectors.py)."""
        from featurehouse.sync.sqlite_vectors import search

        if self._search_connections is None:
            self._search_connections = Connections()
        return search(self.path, layout, request, self._search_connections)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._search_connections is not None:
            self._search_connections.close(lambda con: con.close())
            self._search_connections = None


def python_rows(batch: pa.RecordBatch, layout: ViewLayout) -> list[tuple[Any, ...]]:
    """Rows of Python values in SQLite's storage form (timestamps as text, arrays as JSON)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dtypes = [*layout.key_dtypes, "timestamp", "timestamp", *layout.dtypes]
    columns = []
    vector = layout.vector[0] if layout.vector is not None else None
    for name, column, dtype in zip(batch.schema.names, batch.columns, dtypes):
        if dtype == "timestamp":
            column = column.cast(pa.string())
        elif name == vector:  # sqlite-vec's BLOB of float32 (featurehouse/sync/sqlite_vectors.py)
            from featurehouse.sync.sqlite_vectors import encode_vectors

            columns.append(encode_vectors(column))
            continue
        elif dtype.startswith("array<"):
            element = _json_element(dtype[len("array<") : -1])
            columns.append(
                [
                    None if v is None else json.dumps([None if x is None else element(x) for x in v])
                    for v in column.to_pylist()
                ]
            )
            continue
        if column.null_count == 0 and dtype not in ("bytes",):
            values = column.to_numpy(zero_copy_only=False).tolist()  # much faster than to_pylist
        else:
            values = column.to_pylist()
        if dtype in ("float32", "float64") and pc.any(pc.is_nan(column)).as_py():
            # SQLite binds a NaN as NULL; the text 'NaN' stays text in a REAL column and reads back as NaN
            values = ["NaN" if v != v else v for v in values]
        columns.append(values)
    return list(zip(*columns))


def _json_element(dtype: str) -> Any:
    """How an array element is written in JSON: timestamps as the timestamp columns are (the
    microseconds always shown), bytes as a string of one code point U+0000-U+00FF per byte
    (as in Redis), the rest as JSON has them."""
    if dtype == "timestamp":
        return lambda v: v.isoformat(sep=" ", timespec="microseconds")
    if dtype == "bytes":
        return lambda v: v.decode("latin-1")
    return lambda v: v


# ---- reads -------------------------------------------------------------------------------------------
def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _expect(kind: type | tuple[type, ...], name: str) -> Any:
    def check(v: Any) -> Any:
        if type(v) in (kind if isinstance(kind, tuple) else (kind,)):
            return v
        raise ValueError(f"expected {name}, found {type(v).__name__}")

    return check


def _float(v: Any) -> float:
    if type(v) is str and v != "NaN":  # the writer stores only NaN as text
        raise ValueError(f"expected a number, found the text {v[:20]!r}")
    if type(v) in (bytes,):
        raise ValueError("expected a number, found bytes")
    return float(v)


def _bool(v: Any) -> bool:
    if type(v) is not int or v not in (0, 1):
        raise ValueError("expected 0 or 1")
    return bool(v)


# From the stored value to the dtype's Python value; each raises on anything else.
_DECODERS = {
    "bool": _bool,
    "int32": _expect(int, "an integer"),
    "int64": _expect(int, "an integer"),
    "float32": _float,
    "float64": _float,  # a NaN is stored as the text 'NaN'
    "string": _expect(str, "text"),
    "bytes": _expect(bytes, "a blob"),
    "timestamp": lambda v: _parse_timestamp(_expect(str, "text")(v)),
}


def _array_decoder(element: str) -> Any:
    """An array's decoder: JSON text of its elements (see _json_element)."""
    inner = (lambda x: x.encode("latin-1")) if element == "bytes" else _json_decoder(element)

    def array(v: Any) -> list[Any]:
        if type(v) is bytes and element == "float32":  # a vector feature: float32 BLOB (sqlite_vectors.py)
            from featurehouse.sync.sqlite_vectors import decode_vector

            return decode_vector(v)
        values = json.loads(_expect(str, "JSON text")(v))
        if not isinstance(values, list):
            raise ValueError("expected a JSON array")
        return [None if x is None else inner(x) for x in values]

    return array


def _json_decoder(dtype: str) -> Any:
    """An array element as JSON gives it back (see _json_element)."""
    if dtype == "timestamp":
        return lambda x: _parse_timestamp(_expect(str, "text")(x))
    if dtype in ("float32", "float64"):
        return lambda x: float(_expect((int, float), "a number")(x))  # NaN and infinities: JSON's NaN, Infinity
    if dtype == "bool":
        return _expect(bool, "true or false")
    if dtype in ("int32", "int64"):
        return _expect(int, "an integer")
    return _expect(str, "text")


def _ident(name: str) -> str:
    # A back-quoted name is always a name: SQLite reads an unknown "double-quoted" one as a
    # string literal, and a read would hand back the column's name as its value.
    return "`" + name.replace("`", "``") + "`"


class _Variant:
    """The SELECT for the requested features the store holds (by one state signature)."""

    __slots__ = ("select", "decoders", "positions", "unsynced")

    def __init__(self, layout: ViewLayout, features: Sequence[str], mask: Sequence[bool]):
        self.positions, self.unsynced = held(mask)
        read = [features[i] for i in self.positions]
        cols = [*layout.join_keys, "event_timestamp", *read]
        # the state's signature, in the same statement: the rows and the layout they were written by agree
        self.select = (
            f"SELECT (SELECT signature FROM {_ident(STATE_TABLE)} WHERE view = ?), "
            f"{', '.join(_ident(c) for c in cols)} FROM {_ident(layout.name)} WHERE "
        )
        self.decoders = [decoder(layout.dtype(f), _DECODERS, _array_decoder) for f in read]


class _Prepared:
    __slots__ = ("layout", "features", "nkeys", "key_sql", "variants", "current")

    def __init__(self, layout: ViewLayout, features: Sequence[str]):
        self.layout = layout
        self.features = list(features)
        self.nkeys = len(layout.join_keys)
        self.key_sql = (
            _ident(layout.join_keys[0])
            if self.nkeys == 1
            else "(" + ", ".join(_ident(k) for k in layout.join_keys) + ")"
        )
        self.variants = {layout.signature: _Variant(layout, features, [True] * len(features))}
        self.current = layout.signature  # the state signature last seen


class SQLiteReader(Reader):
    """One connection per thread; statements are cached by sqlite3 per SQL text."""

    def __init__(self, path: Path, timeout: float | None = None):
        self.path = path
        self.timeout = timeout
        self._connections = Connections()

    def _con(self) -> sqlite3.Connection:
        con = self._connections.get()
        if con is None:
            if not self.path.exists():
                raise OnlineStoreError(
                    f"the SQLite online store {self.path} does not exist yet; run 'featurehouse sync'"
                )
            try:
                # timeout: how long a read waits on a lock (sqlite3's default is 5 s)
                con = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    cached_statements=512,
                    timeout=self.timeout if self.timeout else 5.0,
                )
            except sqlite3.Error as error:
                raise OnlineStoreError(f"cannot open the SQLite online store {self.path}: {reason(error)}") from error
            self._connections.add(con)
        return con

    def prepare(self, layout: ViewLayout, features: Sequence[str]) -> _Prepared:
        return _Prepared(layout, features)

    def interrupt(self, thread_id: int) -> None:
        con = self._connections.interrupt(thread_id)
        if con is not None:
            with contextlib.suppress(sqlite3.Error):
                con.interrupt()  # thread-safe: the running statement fails with "interrupted"

    def ping(self) -> None:
        try:
            self._con().execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise OnlineStoreError(f"the SQLite online store {self.path} cannot be read: {reason(error)}") from error

    def read(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[Any]:
        con = self._con()
        results: list[ViewRows | None] = []
        for prepared, keys in requests:
            unique = list(dict.fromkeys(keys))
            try:
                current = prepared.variants[prepared.current]
                variant: _Variant | None = current
                try:
                    rows = self._fetch_all(con, prepared, current, unique)
                except sqlite3.OperationalError as error:
                    if "no such column" not in str(error):
                        raise
                    rows = None  # the table lacks a column: the state says which features it holds
                stored = rows[0][0] if rows else None
                if rows is None or (stored is not None and stored != prepared.current):
                    variant = self._variant(con, prepared)
                    rows = None if variant is None else self._fetch_all(con, prepared, variant, unique)
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    results.append(None)  # never synced
                    continue
                if "no such column" in str(error):  # the table and its sync state disagree: damaged
                    raise OnlineStoreError(
                        f"the SQLite online store {self.path} is damaged: table '{prepared.layout.name}' lacks a "
                        f"column its sync state records ({reason(error)}); run 'featurehouse sync --full-refresh "
                        f"--views {prepared.layout.name}'"
                    ) from error
                raise OnlineStoreError(
                    f"reading the SQLite online store {self.path} failed: {reason(error)}"
                ) from error
            if variant is None or rows is None:
                results.append(None)
                continue
            results.append(self._rows(prepared, variant, rows, keys))
        return results

    def _rows(
        self, prepared: _Prepared, variant: _Variant, rows: list[Any], keys: Sequence[tuple[Any, ...]]
    ) -> ViewRows:
        n = prepared.nkeys
        found: dict[tuple[Any, ...], Any] = {}
        decoders = variant.decoders
        width = len(prepared.features)
        view = prepared.layout.name
        for r in rows:
            key = tuple(r[1 : n + 1])

            def bad(i: int, value: Any, problem: str, key: Any = key) -> None:
                report_corrupt(str(self.path), view, key, prepared.features[variant.positions[i]], value, problem)

            values = decode_values(r[n + 2 :], decoders, bad)
            if variant.unsynced:
                values = spread(values, variant.positions, width)
            try:
                stamp: Any = _parse_timestamp(r[n + 1])
            except (TypeError, ValueError) as error:
                report_corrupt(str(self.path), view, key, "event_timestamp", r[n + 1], reason(error))
                stamp = INVALID
            found[key] = (stamp, values)
        return ViewRows([found.get(k) for k in keys], variant.unsynced)

    def _variant(self, con: sqlite3.Connection, prepared: _Prepared) -> _Variant | None:
        """The variant for the view's current sync state (None: no state, never synced)."""
        row = con.execute(
            f"SELECT signature, state FROM {_ident(STATE_TABLE)} WHERE view = ?", (prepared.layout.name,)
        ).fetchone()
        if row is None:
            return None
        signature = row[0]
        variant = prepared.variants.get(signature)
        if variant is None:
            state = SyncState.from_bytes(row[1], prepared.layout.name)
            features = state.features if state is not None else None
            mask = synced_mask(prepared.layout, prepared.features, signature, features)
            variant = _Variant(prepared.layout, prepared.features, mask)
            prepared.variants[signature] = variant
        prepared.current = signature
        return variant

    def _fetch_all(
        self, con: sqlite3.Connection, prepared: _Prepared, variant: _Variant, unique: list[tuple[Any, ...]]
    ) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(unique), CHUNK_KEYS):  # SQLite caps bound variables
            rows += self._fetch(con, prepared, variant, unique[start : start + CHUNK_KEYS])
        return rows

    @staticmethod
    def _fetch(
        con: sqlite3.Connection, prepared: _Prepared, variant: _Variant, unique: list[tuple[Any, ...]]
    ) -> list[Any]:
        if prepared.nkeys == 1:
            where = f"{prepared.key_sql} IN ({', '.join('?' for _ in unique)})"
            params = [prepared.layout.name, *(k[0] for k in unique)]
        else:
            row = "(" + ", ".join("?" for _ in range(prepared.nkeys)) + ")"
            where = f"{prepared.key_sql} IN (VALUES {', '.join(row for _ in unique)})"
            params = [prepared.layout.name, *(v for k in unique for v in k)]
        return con.execute(variant.select + where, params).fetchall()

    def close(self) -> None:
        self._connections.close(sqlite3.Connection.close)
