"""Vector search in the Postgres online store, through pgvector.

A view with a vector feature keeps it in the view's own table as pgvector's ``vector(n)``
(the feature's column, not a copy), with an HNSW index on it by the metric's operator
class (``vector_cosine_ops``, ``vector_l2_ops``, ``vector_ip_ops``), named
``<view>_<feature>_hnsw``. ``featurehouse sync`` creates both and keeps them: an incremental
sync's upsert maintains the index as Postgres maintains any index; a full refresh builds
the new table, COPYs the rows, builds the index on the full table (faster than row by
row) and swaps table and index in within the one transaction, so readers see the old
table until the commit. A sync runs ``CREATE EXTENSION IF NOT EXISTS vector`` itself when
pgvector is installed on the server but not created in the database (that needs a role
allowed to create it); without the package on the server the view is refused with one
sentence. See docs/vector-search.md and docs/decisions/0019-postgres-vector-index.md.

A search is one statement: the approximate top-k through the HNSW index (pgvector's
iterative scan, so filters and ttl still fill ``top_k``), or with ``exact=True`` an exact
scan ordered by (distance, keys), which the index cannot answer. Statements are composed
with ``psycopg.sql`` (identifiers quoted by the driver, values as parameters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.search_types import SearchHit, SearchRequest

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg import sql

    from featurehouse.sync.layout import ViewLayout

STATE_TABLE = "_featurehouse_sync_state"
# metric -> (operator class of the HNSW index, distance operator): pgvector's <#> is the
# negative inner product, so every metric ranks ascending
OPERATORS = {
    "cosine": ("vector_cosine_ops", "<=>"),
    "l2": ("vector_l2_ops", "<->"),
    "inner_product": ("vector_ip_ops", "<#>"),
}
# HNSW build parameters (pgvector's defaults); recall@10 against exact search is measured by
# bench/bench_vectors_postgres.py (docs/benchmarks.md)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# the candidate list of a search: max(EF_SEARCH, top_k), at most pgvector's limit of 1000
EF_SEARCH = 100
MAX_EF_SEARCH = 1000
# memory the index build may use: enough for the whole graph (about the vectors plus 1 KiB a
# row), never less than the server's setting, at most MAX_BUILD_MEMORY
MAX_BUILD_MEMORY = 1 << 30
PGVECTOR_ADVICE = (
    "CREATE EXTENSION vector needs the pgvector package on the database server (it is not part of PostgreSQL: "
    "Debian/Ubuntu apt-get install postgresql-<version>-pgvector, or see github.com/pgvector/pgvector); "
    "install it there and run featurehouse sync again, or leave the view out (name the other views: "
    "featurehouse sync --views VIEW,..., or set online: false on it)"
)


# ---- the extension -------------------------------------------------------------------------------------
def extension_schema(con: psycopg.Connection) -> str | None:
    """The schema the ``vector`` extension is created in, or None when it is not created in this database."""
    row = con.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    return None if row is None else str(row[0])


def ensure_pgvector(con: psycopg.Connection, layout: ViewLayout, description: str) -> str:
    """Make sure pgvector is created in the database (creating it if the server has it); its schema.

    Raises OnlineStoreError with one sentence naming the view when the server lacks the package
    or the role may not create the extension. Runs outside the sync's transaction.
    """
    import psycopg

    schema = extension_schema(con)
    if schema is not None:
        return schema
    available = con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if available is None:
        raise OnlineStoreError(
            f"feature view '{layout.name}' has a vector index, but {description} has no pgvector; {PGVECTOR_ADVICE}"
        )
    try:
        con.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        raise OnlineStoreError(
            f"feature view '{layout.name}' has a vector index, but pgvector is not created in {description} and "
            "this role may not create it; ask a superuser to run CREATE EXTENSION vector in that database once, "
            "then run featurehouse sync again"
        ) from None
    schema = extension_schema(con)
    assert schema is not None
    return schema


# ---- writes --------------------------------------------------------------------------------------------
def column_type(layout: ViewLayout, schema: str) -> sql.Composable:
    """The vector column's type, ``<extension schema>.vector(n)``."""
    from psycopg import sql

    assert layout.vector is not None
    return sql.SQL("{}.vector({})").format(sql.Identifier(schema), sql.Literal(layout.vector[1]))


def retype_vector_column(create_table: str, layout: ViewLayout, real_array: str, con: psycopg.Connection) -> str:
    """``create_table`` (the view's CREATE TABLE) with the vector feature's column typed ``vector(n)``."""
    if layout.vector is None:
        return create_table
    schema = extension_schema(con)
    if schema is None:  # ensure_pgvector runs first; this is a caller's mistake
        raise OnlineStoreError(f"pgvector is not created in the online store database ({layout.name})")
    name = layout.vector[0]
    column = '"' + name.replace('"', '""') + '" '
    declared = column + real_array + ","
    if create_table.count(declared) != 1:  # pragma: no cover - the table statement's own shape
        raise AssertionError(f"cannot find the column {name} in {create_table}")
    return create_table.replace(declared, column + column_type(layout, schema).as_string(con) + ",")


def index_name(layout: ViewLayout) -> str:
    """The HNSW index of a view's table: ``<view>_<feature>_hnsw`` (cut to Postgres' 63 bytes)."""
    assert layout.vector is not None
    name = f"{layout.name}_{layout.vector[0]}_hnsw"
    return name.encode()[:63].decode(errors="ignore")


def create_index(
    con: psycopg.Connection,
    schema: str,
    table: str,
    name: str,
    layout: ViewLayout,
    rows: int,
    if_not_exists: bool = False,
) -> None:
    """Build the HNSW index ``name`` on ``schema.table`` (inside the caller's transaction).

    A new index over ``rows`` rows gets maintenance_work_mem for its whole graph (SET LOCAL:
    this transaction only), so pgvector builds it in memory.
    """
    from psycopg import sql

    assert layout.vector is not None
    feature, dimensions, metric = layout.vector
    extension = extension_schema(con)
    assert extension is not None
    if rows:
        need = min(MAX_BUILD_MEMORY, rows * (dimensions * 4 + 1024) * 5 // 4) // 1024
        current = con.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'").fetchone()
        if current is not None and need > int(current[0]):
            con.execute("SELECT set_config('maintenance_work_mem', %s, true)", (f"{need}kB",))
    statement = sql.SQL(
        "CREATE INDEX {exists}{name} ON {schema}.{table} USING hnsw ({column} {extension}.{opclass}) "
        "WITH (m = {m}, ef_construction = {ef})"
    ).format(
        exists=sql.SQL("IF NOT EXISTS " if if_not_exists else ""),
        name=sql.Identifier(name),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
        column=sql.Identifier(feature),
        extension=sql.Identifier(extension),
        opclass=sql.Identifier(OPERATORS[metric][0]),
        m=sql.Literal(HNSW_M),
        ef=sql.Literal(HNSW_EF_CONSTRUCTION),
    )
    con.execute(statement)


def rename_index(con: psycopg.Connection, schema: str, old: str, new: str) -> None:
    """Give the index built on a full refresh's new table its lasting name."""
    from psycopg import sql

    con.execute(
        sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
            sql.Identifier(schema), sql.Identifier(old), sql.Identifier(new)
        )
    )


def copy_dtypes(layout: ViewLayout) -> list[str]:
    """The features' dtypes as ``vector_text`` hands them to COPY: the vector feature is text by then."""
    vector = layout.vector[0] if layout.vector is not None else None
    return ["string" if f == vector else d for f, d in zip(layout.features, layout.dtypes)]


def vector_text(batch: pa.RecordBatch, layout: ViewLayout) -> pa.RecordBatch:
    """``batch`` with the vector feature as pgvector's text form ``[x,y,...]`` (shortest float32 digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if layout.vector is None:
        return batch
    position = batch.schema.get_field_index(layout.vector[0])
    column = batch.column(position)
    # Arrow's cast writes each float32 as the shortest decimal that parses back to it (strtof in pgvector)
    digits = pc.cast(pc.list_flatten(column), pa.string())
    start = column.offsets[0].as_py()
    offsets = pc.subtract(column.offsets, pa.scalar(start, column.offsets.type))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, digits), ",")
    text = pc.binary_join_element_wise("[", joined, "]", "")
    text = pc.if_else(column.is_null(), pa.scalar(None, pa.string()), text)
    return batch.set_column(position, batch.schema.field(position).with_type(pa.string()), text)


# ---- search --------------------------------------------------------------------------------------------
class _Connection:
    """A search connection and what it knows: the extension's schema, the vector type, the ef_search set."""

    __slots__ = ("con", "extension", "ef_search")

    def __init__(self, con: psycopg.Connection):
        self.con = con
        self.extension: str | None = None
        self.ef_search = 0


class QueryVector:
    """A query vector, sent to Postgres in pgvector's binary form (see ``register_vector``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    @classmethod
    def of(cls, values: Any) -> QueryVector:
        """pgvector's binary ``vector``: int16 dimensions, int16 unused, float32 big-endian values."""
        import struct

        import numpy as np

        array = np.ascontiguousarray(values, dtype=">f4")
        return cls(struct.pack(">HH", len(array), 0) + array.tobytes())


def register_vector(con: psycopg.Connection, extension: str) -> None:
    """Let ``con`` send QueryVector parameters as pgvector's binary ``vector`` (its type oid in this database)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    row = con.execute(
        "SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE t.typname = 'vector' AND n.nspname = %s",
        (extension,),
    ).fetchone()
    assert row is not None
    oid = int(row[0])

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            return bytes(obj.data)

    VectorDumper.oid = oid
    con.adapters.register_dumper(QueryVector, VectorDumper)


def ef_search(top_k: int) -> int:
    """``hnsw.ef_search`` for a search of ``top_k``: max(EF_SEARCH, top_k), at most 1000."""
    return min(MAX_EF_SEARCH, max(EF_SEARCH, top_k))


def search_sql(
    schema: str,
    extension: str,
    layout: ViewLayout,
    request: SearchRequest,
    column_types: Callable[[str], str],
) -> str:
    """The search statement (see ``search``).

    Parameters, in order: the query vector, the ttl cut-off (when there is one), each
    ``where`` value, top_k, the view's name. One row per hit plus, when the view was synced,
    the state's signature in every row (one row with NULL hits when nothing matches).
    """
    from psycopg import sql

    assert layout.vector is not None
    vector = layout.vector[0]
    metric = request.metric
    operator = sql.SQL("OPERATOR({}.{})").format(sql.Identifier(extension), sql.SQL(OPERATORS[metric][1]))
    column = sql.Identifier(vector)
    distance = sql.Identifier("_fh_distance")

    def feature(name: str) -> sql.Composable:
        # pgvector's vector reads back as real[], as any array<float32> feature does
        if layout.dtype(name) == "array<float32>":
            return sql.SQL("{}::real[] AS {}").format(sql.Identifier(name), sql.Identifier(name))
        return sql.Identifier(name)

    conditions: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(column)]
    if metric == "cosine":  # a zero vector has no direction (HNSW does not index it either)
        conditions.append(sql.SQL("{}.vector_norm({}) > 0").format(sql.Identifier(extension), column))
    if request.not_before is not None:
        conditions.append(sql.SQL('"event_timestamp" >= %s'))
    for name, _ in request.where:
        cast = sql.SQL(column_types(layout.dtype(name)))
        conditions.append(sql.SQL("{} = %s::{}").format(sql.Identifier(name), cast))
    keys = [sql.Identifier(k) for k in layout.join_keys]

    def ordered(key: str, table: str | None = None) -> sql.Composable:
        ident = sql.Identifier(table, key) if table else sql.Identifier(key)
        if layout.key_dtypes[layout.join_keys.index(key)] == "string":  # byte-wise, as the warehouse compares
            return sql.SQL('{} COLLATE "C"').format(ident)
        return ident

    # HNSW: ORDER BY the distance alone (what the index answers), re-sorted with the keys outside;
    # exact: the keys in the same ORDER BY, which the index cannot answer, so Postgres scans the table
    exact = request.exact
    inner_order = [distance, *(ordered(k) for k in layout.join_keys)] if exact else [distance]
    inner = sql.SQL(
        'SELECT {keys}, "event_timestamp", {features}{comma}{column} {operator} %s AS {distance} '
        "FROM {schema}.{view} WHERE {conditions} ORDER BY {order} LIMIT %s"
    ).format(
        keys=sql.SQL(", ").join(keys),
        features=sql.SQL(", ").join(feature(f) for f in request.features),
        comma=sql.SQL(", " if request.features else ""),
        column=column,
        operator=operator,
        distance=distance,
        schema=sql.Identifier(schema),
        view=sql.Identifier(layout.name),
        conditions=sql.SQL(" AND ").join(conditions),
        order=sql.SQL(", ").join(inner_order),
    )
    outer_columns = [
        *(sql.Identifier("h", k) for k in layout.join_keys),
        sql.Identifier("h", "event_timestamp"),
        *(sql.Identifier("h", f) for f in request.features),
    ]
    statement = sql.SQL(
        "SELECT s.signature, h.{distance}, {columns} FROM {schema}.{state} s LEFT JOIN LATERAL ({inner}) h ON true "
        "WHERE s.view = %s ORDER BY h.{distance}, {keys}"
    ).format(
        distance=distance,
        columns=sql.SQL(", ").join(outer_columns),
        schema=sql.Identifier(schema),
        state=sql.Identifier(STATE_TABLE),
        inner=inner,
        keys=sql.SQL(", ").join(ordered(k, "h") for k in layout.join_keys),
    )
    return statement.as_string(None)


def search_params(layout: ViewLayout, request: SearchRequest) -> list[Any]:
    """The parameters of ``search_sql``, in order."""
    params: list[Any] = [QueryVector.of(request.query)]
    if request.not_before is not None:
        params.append(request.not_before)
    params += [value for _, value in request.where]
    params += [request.top_k, layout.name]
    return params


class Searcher:
    """Searches one Postgres online store on a connection of its own (opened on first use)."""

    def __init__(
        self,
        url: str,
        schema: str,
        description: str,
        open_connection: Callable[[], psycopg.Connection],
        column_types: Callable[[str], str],
    ):
        self.url = url
        self.schema = schema
        self.description = description
        self._open = open_connection
        self._column_types = column_types
        self._state: _Connection | None = None
        self._lock = threading.Lock()  # one connection: the server's threads take turns (and ef_search is theirs)
        # (layout, features, where names, ttl?, exact, metric, extension) -> the statement
        self._statements: dict[tuple[Any, ...], str] = {}

    def _connection(self) -> _Connection:
        import psycopg

        if self._state is not None and not self._state.con.closed and not self._state.con.broken:
            return self._state
        con = self._open()
        state = _Connection(con)
        try:
            state.extension = extension_schema(con)
            if state.extension is not None:
                register_vector(con, state.extension)
                # pgvector 0.8: keep scanning the index until top_k rows pass the filters (or
                # hnsw.max_scan_tuples); relaxed order, so the statement re-sorts the hits
                con.execute("SET hnsw.iterative_scan = relaxed_order")
        except psycopg.Error:
            con.close()
            raise
        self._state = state
        return state

    def search(self, layout: ViewLayout, request: SearchRequest) -> list[SearchHit]:
        """The ``request.top_k`` nearest documents, best first (see the module's docstring)."""
        import psycopg

        from featurehouse.sync.base import reason

        if layout.vector is None:  # the SDK checks this first; a store never guesses a column
            raise OnlineStoreError(f"feature view '{layout.name}' has no vector feature to search")
        for attempt in (0, 1):  # one retry on a new connection when the old one died since its last use
            fresh = self._state is None
            try:
                with self._lock:
                    return self._search(self._connection(), layout, request)
            except psycopg.errors.UndefinedTable:
                raise OnlineStoreError(
                    f"feature view '{layout.name}' has not been synced to {self.description}; run 'featurehouse sync'"
                ) from None
            except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction, psycopg.errors.DatatypeMismatch):
                raise self._stale(layout) from None
            except psycopg.OperationalError as error:
                if attempt or fresh:
                    raise OnlineStoreError(f"searching {self.description} failed: {reason(error, self.url)}") from None
                self.close()
            except psycopg.Error as error:
                raise OnlineStoreError(f"searching {self.description} failed: {reason(error, self.url)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _stale(self, layout: ViewLayout) -> OnlineStoreError:
        return OnlineStoreError(
            f"feature view '{layout.name}' in {self.description} was synced before its current definition "
            "(its vector index or features changed); run 'featurehouse sync' to search it"
        )

    def _search(self, state: _Connection, layout: ViewLayout, request: SearchRequest) -> list[SearchHit]:
        con = state.con
        if state.extension is None:
            state.extension = extension_schema(con)
            if state.extension is None:
                raise OnlineStoreError(
                    f"feature view '{layout.name}' cannot be searched: {self.description} has no pgvector "
                    "(featurehouse sync creates it when the server has the package); run 'featurehouse sync'"
                )
            register_vector(con, state.extension)
            con.execute("SET hnsw.iterative_scan = relaxed_order")
        if not request.exact:
            wanted = ef_search(request.top_k)
            if wanted != state.ef_search:  # per statement in effect: set only when it changes
                con.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(wanted),))
                state.ef_search = wanted
        shape = (
            layout,
            request.features,
            tuple(name for name, _ in request.where),
            request.not_before is not None,
            request.exact,
            request.metric,
            state.extension,
        )
        statement = self._statements.get(shape)
        if statement is None:
            if len(self._statements) > 256:  # a bound: every shape is one prepared statement too
                self._statements.clear()
            statement = self._statements[shape] = search_sql(
                self.schema, state.extension, layout, request, self._column_types
            )
        rows = con.execute(statement, search_params(layout, request), prepare=True).fetchall()
        if not rows:
            raise OnlineStoreError(
                f"feature view '{layout.name}' has not been synced to {self.description}; run 'featurehouse sync'"
            )
        if rows[0][0] != layout.signature:
            raise self._stale(layout)
        n = len(layout.join_keys)
        hits = []
        for row in rows:
            if row[1] is None:  # the LEFT JOIN's empty side: no document matched
                continue
            key = tuple(row[2 : 2 + n])
            hits.append(SearchHit(key, tuple(row[3 + n :]), float(row[1]), row[2 + n]))
        return hits

    def close(self) -> None:
        """Close the search connection; the next search opens a new one."""
        if self._state is not None:
            try:
                self._state.con.close()
            finally:
                self._state = None
