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
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import (
    Backend,
    Progress,
    Reader,
    busy,
    lock_owner,
    newer_condition,
    quote,
    reason,
    rows_to_write,
    wait_for,
)
from featurehouse.sync.layout import STATE_TABLE, SyncState, ViewLayout

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

BATCH_ROWS = 50_000
CHUNK_KEYS = 500
_TYPES = {"bool": "INTEGER", "int32": "INTEGER", "int64": "INTEGER", "float32": "REAL", "float64": "REAL",
          "string": "TEXT", "bytes": "BLOB", "timestamp": "TEXT"}


def sqlite_type(dtype: str) -> str:
    return "TEXT" if dtype.startswith("array<") else _TYPES[dtype]


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-65536")  # 64 MB: a large sync's B-tree stays in memory
    return con


class SQLiteBackend(Backend):
    kind = "sqlite"

    def __init__(self, path: Path):
        self.path = path
        self.description = f"the SQLite online store {path}"
        self._con: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self) -> None:
        if self._con is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = _connect(self.path)
            self._con.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(STATE_TABLE)} "
                "(view TEXT PRIMARY KEY, signature TEXT NOT NULL, synced_at TEXT NOT NULL, "
                "rows INTEGER NOT NULL, state BLOB NOT NULL)"
            )
        except (OSError, sqlite3.Error) as error:
            raise OnlineStoreError(f"cannot open {self.description}: {reason(error)}") from None

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

    # ---- state -------------------------------------------------------------------------
    def read_state(self, layout: ViewLayout) -> SyncState | None:
        row = self.con.execute(f"SELECT state FROM {quote(STATE_TABLE)} WHERE view = ?", (layout.name,)).fetchone()
        return SyncState.from_bytes(row[0]) if row else None

    def states(self) -> list[SyncState]:
        rows = self.con.execute(f"SELECT state FROM {quote(STATE_TABLE)} ORDER BY view").fetchall()
        return [s for s in (SyncState.from_bytes(r[0]) for r in rows) if s is not None]

    def _save_state(self, state: SyncState) -> None:
        self.con.execute(
            f"INSERT INTO {quote(STATE_TABLE)} (view, signature, synced_at, rows, state) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (view) DO UPDATE SET signature = excluded.signature, synced_at = excluded.synced_at, "
            "rows = excluded.rows, state = excluded.state",
            (state.view, state.signature, state.synced_at.isoformat(), state.rows, state.to_bytes()),
        )

    # ---- writes ------------------------------------------------------------------------
    def write(self, layout: ViewLayout, table: "pa.Table", changed: "np.ndarray | None",
              state: SyncState, progress: Progress) -> int:
        con = self.con
        columns = layout.columns
        names = ", ".join(quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        target = quote(layout.name)
        try:
            con.execute("BEGIN IMMEDIATE")
            if changed is None:
                building = quote(layout.name + "__fh_new")
                con.execute(f"DROP TABLE IF EXISTS {building}")
                con.execute(_create_table_sql(layout, building))
                sql = f"INSERT INTO {building} ({names}) VALUES ({marks})"
            else:
                con.execute(_create_table_sql(layout, target, if_not_exists=True))
                keys = ", ".join(quote(k) for k in layout.join_keys)
                updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in layout.join_keys)
                condition = newer_condition(layout, "excluded", target, lambda a, b: f"{a} IS {b}")
                sql = (f"INSERT INTO {target} ({names}) VALUES ({marks}) "
                       f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {condition}")
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
            self._save_state(state)
            con.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise OnlineStoreError(f"writing {layout.name} to {self.description} failed: {reason(error)}") from None
        return written

    def drop_view(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        self.con.execute(f"DELETE FROM {quote(STATE_TABLE)} WHERE view = ?", (name,))

    def reader(self) -> "SQLiteReader":
        return SQLiteReader(self.path)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _create_table_sql(layout: ViewLayout, table: str, if_not_exists: bool = False) -> str:
    columns = [f"{quote(k)} {sqlite_type(d)} NOT NULL" for k, d in zip(layout.join_keys, layout.key_dtypes)]
    columns += ['"event_timestamp" TEXT NOT NULL', '"created_timestamp" TEXT']
    columns += [f"{quote(f)} {sqlite_type(d)}" for f, d in zip(layout.features, layout.dtypes)]
    keys = ", ".join(quote(k) for k in layout.join_keys)
    exists = "IF NOT EXISTS " if if_not_exists else ""
    # WITHOUT ROWID: the primary key is the table's only B-tree (half the writes, one lookup per read)
    return f"CREATE TABLE {exists}{table} ({', '.join(columns)}, PRIMARY KEY ({keys})) WITHOUT ROWID"


def python_rows(batch: "pa.RecordBatch", layout: ViewLayout) -> list[tuple[Any, ...]]:
    """Rows of Python values in SQLite's storage form (timestamps as text, arrays as JSON)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dtypes = [*layout.key_dtypes, "timestamp", "timestamp", *layout.dtypes]
    columns = []
    for column, dtype in zip(batch.columns, dtypes):
        if dtype == "timestamp":
            column = column.cast(pa.string())
        elif dtype.startswith("array<"):
            element = _json_element(dtype[len("array<"):-1])
            columns.append([None if v is None else json.dumps([None if x is None else element(x) for x in v])
                            for v in column.to_pylist()])
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


def _decoder(dtype: str) -> Any:
    if dtype == "bool":
        return lambda v: None if v is None else bool(v)
    if dtype in ("float32", "float64"):
        return float  # a NaN is stored as the text 'NaN'
    if dtype == "timestamp":
        return lambda v: None if v is None else _parse_timestamp(v)
    if dtype.startswith("array<"):
        element = dtype[len("array<"):-1]
        inner = (lambda x: x.encode("latin-1")) if element == "bytes" else _decoder(element) or (lambda x: x)
        return lambda v: None if v is None else [None if x is None else inner(x) for x in json.loads(v)]
    return None  # stored as is


class _Prepared:
    __slots__ = ("layout", "select", "decoders", "nkeys", "key_sql")

    def __init__(self, layout: ViewLayout, features: Sequence[str]):
        self.layout = layout
        self.nkeys = len(layout.join_keys)
        cols = [*layout.join_keys, "event_timestamp", *features]
        self.select = f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(layout.name)} WHERE "
        self.key_sql = (quote(layout.join_keys[0]) if self.nkeys == 1
                        else "(" + ", ".join(quote(k) for k in layout.join_keys) + ")")
        self.decoders = [_decoder(layout.dtype(f)) for f in features]


class SQLiteReader(Reader):
    """One connection per thread; statements are cached by sqlite3 per SQL text."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if not self.path.exists():
                raise OnlineStoreError(f"the SQLite online store {self.path} does not exist yet; run 'featurehouse sync'")
            try:
                con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False, cached_statements=512)
            except sqlite3.Error as error:
                raise OnlineStoreError(f"cannot open the SQLite online store {self.path}: {reason(error)}") from None
            self._local.con = con
            self._all.append(con)
        return con

    def prepare(self, layout: ViewLayout, features: Sequence[str]) -> _Prepared:
        return _Prepared(layout, features)

    def read(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[list[Any]]:
        con = self._con()
        results = []
        for prepared, keys in requests:
            unique = list(dict.fromkeys(keys))
            rows: list[Any] = []
            try:
                for start in range(0, len(unique), CHUNK_KEYS):  # SQLite caps bound variables
                    rows += self._fetch(con, prepared, unique[start:start + CHUNK_KEYS])
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    results.append(None)  # never synced
                    continue
                raise OnlineStoreError(f"reading the SQLite online store {self.path} failed: {reason(error)}") from None
            n = prepared.nkeys
            found: dict[tuple[Any, ...], Any] = {}
            decoders = prepared.decoders
            for r in rows:
                values = [v if d is None or v is None else d(v) for v, d in zip(r[n + 1:], decoders)]
                found[tuple(r[:n])] = (_parse_timestamp(r[n]), values)
            results.append([found.get(k) for k in keys])
        return results

    @staticmethod
    def _fetch(con: sqlite3.Connection, prepared: _Prepared, unique: list[tuple[Any, ...]]) -> list[Any]:
        if prepared.nkeys == 1:
            where = f"{prepared.key_sql} IN ({', '.join('?' for _ in unique)})"
            params = [k[0] for k in unique]
        else:
            row = "(" + ", ".join("?" for _ in range(prepared.nkeys)) + ")"
            where = f"{prepared.key_sql} IN (VALUES {', '.join(row for _ in unique)})"
            params = [v for k in unique for v in k]
        return con.execute(prepared.select + where, params).fetchall()

    def close(self) -> None:
        for con in self._all:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        self._all.clear()
