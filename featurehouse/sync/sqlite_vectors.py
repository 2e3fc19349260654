"""Vector search in the SQLite online store, through the sqlite-vec extension.

A view's vector feature is stored in the view's own table, as sqlite-vec's native form: a
BLOB of little-endian float32 (the other arrays stay JSON text). The sync writes it with
the rest of the row, in the same transaction; it refuses a view whose vectors hold NaN or
infinity or have the wrong length, naming the key. A search is one exact scan of that
table with sqlite-vec's ``vec_distance_*`` functions, with the ttl and ``where`` filters in
the same query, ordered by distance and then the join keys
(docs/decisions/0017-sqlite-vector-search.md says why not a vec0 virtual table).

Python's own ``sqlite3`` here is built without loadable extensions, so the SQLite store uses
``pysqlite3`` (the same DB-API, with its own SQLite) where it is installed, for its writes and
reads too (see ``sqlite_module``); searches load sqlite-vec into their read connections, the
sync needs no extension.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.search_types import SearchHit, SearchRequest

if TYPE_CHECKING:
    import pyarrow as pa

    from featurehouse.sync.base import Connections
    from featurehouse.sync.layout import ViewLayout

STATE_TABLE = "_featurehouse_sync_state"
# the distance function of each metric; inner_product is derived from two l2 calls (see _distance)
DISTANCE_FUNCTIONS = {"cosine": "vec_distance_cosine", "l2": "vec_distance_l2"}


# ---- writes ----------------------------------------------------------------------------------------
def encode_vectors(column: pa.Array) -> list[Any]:
    """Each vector as sqlite-vec's BLOB (little-endian float32); None stays None."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.list_flatten(column).cast(pa.float32()).to_numpy(zero_copy_only=False).astype("<f4", copy=False)
    data = values.tobytes()
    offsets = (column.offsets.to_numpy(zero_copy_only=False) - column.offsets[0].as_py()) * 4
    valid = column.is_valid().to_numpy(zero_copy_only=False) if column.null_count else None
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    if valid is None:
        return [data[s:e] for s, e in zip(starts, ends)]
    return [data[s:e] if ok else None for s, e, ok in zip(starts, ends, np.asarray(valid).tolist())]


def decode_vector(value: bytes) -> list[float]:
    """A stored vector BLOB back as a list of floats."""
    import numpy as np

    if len(value) % 4:
        raise ValueError(f"a vector BLOB of {len(value)} bytes is not whole float32 values")
    return list(np.frombuffer(value, dtype="<f4").tolist())


# ---- reads -----------------------------------------------------------------------------------------
def connection(path: Path, connections: Connections) -> Any:
    """This thread's read-only connection to ``path`` with sqlite-vec loaded (kept in ``connections``)."""
    con = connections.get()
    if con is not None:
        return con
    if not path.exists():
        raise OnlineStoreError(f"the SQLite online store {path} does not exist yet; run 'featurehouse sync'")
    sqlite = sqlite_module()
    if not hasattr(sqlite.Connection, "enable_load_extension"):
        raise OnlineStoreError(
            "vector search on SQLite needs a sqlite3 that can load extensions: pip install pysqlite3-binary"
        )
    import sqlite_vec

    try:
        con = sqlite.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        con.enable_load_extension(True)
        sqlite_vec.load(con)
        con.enable_load_extension(False)
    except sqlite.Error as error:
        raise OnlineStoreError(f"cannot open the SQLite online store {path} for search: {error}") from None
    return connections.add(con)


@functools.cache
def sqlite_module() -> Any:
    """The DB-API sqlite module of this process: the stdlib's sqlite3 when it can load extensions,
    else pysqlite3 where installed (a build of Python without loadable extensions, as pyenv's
    default), else the stdlib's (vector search then says what to install).

    The SQLite store's writes and reads use it too (featurehouse/sync/sqlite.py): two copies of
    the SQLite library in one process do not see each other's POSIX locks, and closing a file in
    one releases the other's locks on it, which can corrupt a WAL database
    (https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"). So the process
    uses one, the one that can load sqlite-vec, and the stdlib's whenever it can.
    """
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        return sqlite3
    return dbapi2


@functools.lru_cache(maxsize=256)
def search_sql(
    view: str,
    keys: tuple[str, ...],
    vector: str,
    metric: str,
    features: tuple[str, ...],
    where: tuple[str, ...],
    ttl: bool,
) -> str:
    """The search statement: the top documents by (distance, keys), then their features.

    Parameters, in order: the view's name (for its sync signature, the first column), the query
    vector (BLOB) — for inner_product also its norm and a zero vector —, the ttl cut-off when
    ``ttl``, each ``where`` value, then top_k.
    """
    from sqlglot import exp

    def col(name: str, table: str | None = None) -> exp.Column:
        return exp.column(name, table=table, quoted=True)

    distance = _distance(metric, col(vector))
    conditions: list[exp.Expr] = [exp.Not(this=exp.Is(this=col(vector), expression=exp.Null()))]
    if ttl:
        conditions.append(exp.GTE(this=col("event_timestamp"), expression=exp.Placeholder()))
    conditions += [exp.EQ(this=col(name), expression=exp.Placeholder()) for name in where]
    top = (
        exp.select(*[col(k) for k in keys], exp.alias_(distance, "fh_distance", quoted=True))
        .from_(exp.table_(view, quoted=True))
        .where(exp.and_(*conditions))
        # a NULL distance (cosine of a zero vector) sorts last; the caller drops it
        .order_by(exp.Ordered(this=col("fh_distance"), nulls_first=False), *[exp.Ordered(this=col(k)) for k in keys])
        .limit(exp.Placeholder())
    )
    # the view's sync signature, in the same statement: the rows and the layout they were written by agree
    signature = (
        exp.select(exp.column("signature", quoted=True))
        .from_(exp.table_(STATE_TABLE, quoted=True))
        .where(exp.EQ(this=exp.column("view", quoted=True), expression=exp.Placeholder()))
        .subquery()
    )
    outer = (
        exp.select(
            signature,
            col("fh_distance", "t"),
            *[col(k, "v") for k in keys],
            col("event_timestamp", "v"),
            *[col(f, "v") for f in features],
        )
        .from_(exp.alias_(top.subquery(), "t"))
        .join(
            exp.alias_(exp.table_(view, quoted=True), "v"),
            on=exp.and_(*[exp.EQ(this=col(k, "v"), expression=col(k, "t")) for k in keys]),
        )
        .order_by(
            exp.Ordered(this=col("fh_distance", "t"), nulls_first=False),
            *[exp.Ordered(this=col(k, "t")) for k in keys],
        )
    )
    return outer.sql(dialect="sqlite")


def _distance(metric: str, vector: Any) -> Any:
    """The distance SQL: cosine and l2 natively; inner_product as -a.b = (cosine distance - 1) |a| |b|.

    sqlite-vec has no inner-product distance; |b| is the l2 distance to a zero vector, and a
    zero vector on either side (a NULL cosine) has the inner product 0.
    """
    from sqlglot import exp

    def call(name: str, *args: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this=name, expressions=list(args))

    if metric in DISTANCE_FUNCTIONS:
        return call(DISTANCE_FUNCTIONS[metric], vector, exp.Placeholder())
    cosine = call("vec_distance_cosine", vector, exp.Placeholder())
    norm = call("vec_distance_l2", vector.copy(), exp.Placeholder())
    product = exp.Mul(
        this=exp.Mul(
            this=exp.Paren(this=exp.Sub(this=cosine, expression=exp.Literal.number("1.0"))),
            expression=exp.Placeholder(),
        ),
        expression=norm,
    )
    return exp.Coalesce(this=product, expressions=[exp.Literal.number("0.0")])


def _param(value: Any, dtype: str) -> Any:
    """A ``where`` value as SQLite stores the dtype (bools as 0/1, timestamps as UTC text)."""
    if dtype == "bool":
        return int(bool(value))
    if dtype == "timestamp" and isinstance(value, datetime):
        return _stored_time(value)
    return value


def _stored_time(when: datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when.isoformat(sep=" ", timespec="microseconds")


def search(path: Path, layout: ViewLayout, request: SearchRequest, connections: Connections) -> list[SearchHit]:
    """The ``request.top_k`` nearest documents of ``layout``'s view in the SQLite store at ``path``."""
    import numpy as np

    from featurehouse.sync.base import decoder, report_corrupt
    from featurehouse.sync.sqlite import _DECODERS, _array_decoder, _parse_timestamp

    con = connection(path, connections)
    sql = search_sql(
        layout.name,
        layout.join_keys,
        request.vector_feature,
        request.metric,
        request.features,
        tuple(name for name, _ in request.where),
        request.not_before is not None,
    )
    query = np.ascontiguousarray(request.query, dtype="<f4")
    params: list[Any] = [layout.name, query.tobytes()]
    if request.metric == "inner_product":  # the query's norm, then a zero vector (see _distance)
        params += [float(np.linalg.norm(query.astype(np.float64))), bytes(4 * len(query))]
    if request.not_before is not None:
        params.append(_stored_time(request.not_before))
    params += [_param(value, layout.dtype(name)) for name, value in request.where]
    params.append(request.top_k)
    dbapi2 = sqlite_module()
    try:
        try:
            rows: list[Any] | None = con.execute(sql, params).fetchall()
        except dbapi2.OperationalError as error:
            if "no such table" not in str(error):
                raise
            rows = None  # never synced, or damaged: the state says which
        if not rows or rows[0][0] != layout.signature:
            _check_state(con, path, layout, table_exists=rows is not None)
    except dbapi2.Error as error:  # one sentence, never a traceback
        raise OnlineStoreError(f"searching the SQLite online store {path} failed: {error}") from None
    n = len(layout.join_keys)
    decoders = [
        decode_vector_value if f == request.vector_feature else decoder(layout.dtype(f), _DECODERS, _array_decoder)
        for f in request.features
    ]
    hits = []
    for row in rows or ():
        if row[1] is None:
            continue  # cosine of a zero document vector: no direction, never returned
        key = tuple(row[2 : n + 2])
        values = []
        for feature, decode, value in zip(request.features, decoders, row[n + 3 :]):
            try:
                values.append(None if value is None or decode is None else decode(value))
            except (ValueError, TypeError) as error:
                from featurehouse.sync.base import INVALID

                report_corrupt(str(path), layout.name, key, feature, value, str(error))
                values.append(INVALID)
        hits.append(SearchHit(key, tuple(values), float(row[1]), _parse_timestamp(row[n + 2])))
    return hits


def _check_state(con: Any, path: Path, layout: ViewLayout, table_exists: bool) -> None:
    """Raise the one sentence for a view that was not synced, or synced by another definition."""
    state = con.execute("SELECT signature FROM _featurehouse_sync_state WHERE view = ?", (layout.name,)).fetchone()
    if state is None:
        raise OnlineStoreError(
            f"feature view '{layout.name}' has not been synced to the SQLite online store {path}; "
            "run 'featurehouse sync'"
        )
    if state[0] != layout.signature:
        raise OnlineStoreError(
            f"feature view '{layout.name}' in the SQLite online store {path} was synced before its "
            "current definition (its vector index or features changed); run 'featurehouse sync' to search it"
        )
    if not table_exists:
        raise OnlineStoreError(
            f"the SQLite online store {path} is damaged: its sync state records feature view '{layout.name}' "
            f"but its table is missing; run 'featurehouse sync --full-refresh --views {layout.name}'"
        )


def decode_vector_value(value: Any) -> list[float]:
    """A stored vector (BLOB, or JSON text written before the view had an index) as floats."""
    if isinstance(value, bytes):
        return decode_vector(value)
    import json

    return [float(x) for x in json.loads(value)]
