"""``store.push`` and ``store.write_to_online_store``: rows in, validated, written online and to the log.

A batch is validated whole before anything is written (types, join keys, timestamps: one
sentence naming the row and the column). Then, for ``push``:

1. ``to`` offline or online_and_offline: the rows are appended to the push log the views'
   models read (``featurehouse.sync.offline_log``), as one batch named by its content;
2. ``to`` online or online_and_offline: each plain online view over the batch source gets
   its rows through the store's conditional write, the rule ``sync`` uses: a row replaces
   the stored one only if it is newer by the point-in-time tie-break.

The log is written first because it is the record the warehouse (and so every later sync
and training set) builds on; a failure after it says what was written, and the same rows
pushed again are harmless (docs/decisions/0023-push-durability.md). A row without a created
time gets the arrival time, the same one online and in the log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.errors import FeaturehouseError, OnlineStoreError, RequestError, did_you_mean, excerpt
from featurehouse.online.reader import PerStore
from featurehouse.spec.model import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehouse.spec.push import ARRIVED_AT, PushColumn, push_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync.base import Backend
    from featurehouse.sync.layout import ViewLayout

PUSH_MODES = ("online", "offline", "online_and_offline")
MAX_PUSH_ROWS = 100_000  # per call: bigger loads belong to the batch source and `sync`
SYNC_LOCK_WAIT = 60.0  # seconds the first push into a never-synced view waits for a running sync


class PushError(FeaturehouseError):
    """A push that failed part-way: the message says which part failed and what was written.

    ``failed`` names the part (``the push log`` or ``online view 'v'``), ``written`` the parts
    written before it; pushing the same rows again is harmless (docs/decisions/0023).
    """

    def __init__(self, what: str, failed: str, written: list[str], cause: str):
        self.what, self.failed, self.written, self.cause = what, failed, written, cause
        super().__init__(self.sentence(cause))

    def sentence(self, cause: str) -> str:
        """The error as one sentence, with ``cause`` as the reason given for the failed part."""
        part = f"written: {', '.join(self.written)}" if self.written else "nothing was written"
        return f"{self.what}: writing {self.failed} failed ({cause}); {part}; pushing the same rows again is harmless"


@dataclass
class PushResult:
    """What one push wrote: rows accepted, rows written (and kept) per online view, the log batch."""

    rows: int
    online: dict[str, int] = field(default_factory=dict)  # view -> rows written
    kept: dict[str, int] = field(default_factory=dict)  # view -> rows not written: the store holds newer ones
    offline_batch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON (the server's answer)."""
        return {"rows": self.rows, "online": self.online, "kept": self.kept, "offline_batch": self.offline_batch}


# ---- validation ----------------------------------------------------------------------------------------
def _columns_of(data: Any) -> dict[str, Any]:
    """Column name -> values (a list, a pandas Series or an Arrow array) of a DataFrame, Arrow table or dict."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return {name: data.column(name) for name in data.column_names}
    if isinstance(data, dict):
        for name, values in data.items():
            if not isinstance(values, (list, tuple)):
                raise RequestError(f"df: column {excerpt(str(name))} must be a list of values, one per row")
        return dict(data)
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return {str(name): data[name].reset_index(drop=True) for name in data.columns}
    raise RequestError(f"expected a pandas DataFrame, an Arrow table or a dict of columns, got {type(data).__name__}")


def _length(values: Any) -> int:
    return len(values)


_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}


def _check_value(value: Any, dtype: str) -> Any:
    """``value`` as a Python value of ``dtype`` (None stays None), or ValueError saying what was expected."""
    import math

    if value is None:
        return None
    if dtype in _INT_RANGES:
        if isinstance(value, float) and math.isnan(value):
            return None  # pandas' missing integer
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is bool or (not isinstance(value, int) and not _is_numpy_int(value)):
            raise ValueError(f"expected an integer ({dtype})")
        low, high = _INT_RANGES[dtype]
        if not low <= int(value) <= high:
            raise ValueError(f"expected an integer in {dtype}'s range")
        return int(value)
    if dtype in ("float32", "float64"):
        if type(value) is bool or (not isinstance(value, (int, float)) and not _is_numpy_number(value)):
            raise ValueError(f"expected a number ({dtype})")
        return float(value)
    if dtype == "bool":
        if not isinstance(value, bool) and type(value).__name__ != "bool_":
            raise ValueError("expected true or false")
        return bool(value)
    if dtype == "string":
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if dtype == "bytes":
        if not isinstance(value, bytes):
            raise ValueError("expected bytes")
        return value
    if dtype == "timestamp":
        return _timestamp(value)
    if dtype.startswith("array<"):
        if not isinstance(value, (list, tuple)) and type(value).__name__ != "ndarray":
            raise ValueError(f"expected a list ({dtype})")
        inner = dtype[len("array<") : -1]
        return [_check_value(v, inner) for v in list(value)]
    raise ValueError(f"unsupported dtype {dtype}")  # pragma: no cover - specs allow no other


def _is_numpy_int(value: Any) -> bool:
    return type(value).__module__ == "numpy" and "int" in type(value).__name__


def _is_numpy_number(value: Any) -> bool:
    return type(value).__module__ == "numpy" and ("int" in type(value).__name__ or "float" in type(value).__name__)


def _timestamp(value: Any) -> datetime | None:
    """An instant as naive UTC (naive input is UTC already): datetimes, pandas Timestamps, ISO 8601 text."""
    if type(value).__name__ == "NaTType":
        return None
    if isinstance(value, str) and value.strip() == "NaT":
        return None  # pandas' missing time as text: Feast's remote store sends it for a missing created time
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError("expected a timestamp (ISO 8601 text such as '2026-01-01T12:00:00Z')") from None
    elif hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    elif type(value).__name__ == "datetime64":
        import pandas as pd

        value = pd.Timestamp(value).to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        raise ValueError("expected a timestamp, got a date without a time")
    raise ValueError("expected a timestamp (a datetime or ISO 8601 text)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def validate_rows(data: Any, columns: list[PushColumn], what: str, now: datetime) -> pa.Table:
    """The rows of ``data`` as an Arrow table of ``columns`` (naive UTC timestamps, created filled with ``now``).

    RequestError (one sentence: ``what``, the row, the column) on a missing or unknown
    column, a value of the wrong type, a NULL join key or event time, or two rows for the
    same entity, event and created time.
    """
    import pyarrow as pa

    given = _columns_of(data)
    names = [c.name for c in columns]
    for name in given:
        if name not in names and name != ARRIVED_AT:
            raise RequestError(f"{what}: unknown column {excerpt(str(name))}{did_you_mean(str(name), names)}")
    lengths = {name: _length(values) for name, values in given.items()}
    if len(set(lengths.values())) > 1:
        shortest = min(lengths, key=lambda n: lengths[n])
        longest = max(lengths, key=lambda n: lengths[n])
        raise RequestError(
            f"{what}: columns have different lengths ('{shortest}' {lengths[shortest]}, '{longest}' {lengths[longest]})"
        )
    count = next(iter(lengths.values()), 0)
    if count > MAX_PUSH_ROWS:
        raise RequestError(f"{what}: {count:,} rows in one push; the limit is {MAX_PUSH_ROWS:,} per call")
    arrays = []
    for column in columns:
        values = given.get(column.name)
        if values is None:
            if column.role == "created":
                arrays.append(pa.repeat(pa.scalar(now, pa.timestamp("us")), count))
                continue
            raise RequestError(
                f"{what}: the rows have no column '{column.name}' ({column.dtype}); expected columns: "
                f"{', '.join(c.name for c in columns if c.role != 'created')}"
            )
        array = _typed(values, column, what)
        if column.role == "created" and array.null_count:
            import pyarrow.compute as pc

            array = pc.fill_null(array, pa.scalar(now, pa.timestamp("us")))
        arrays.append(array)
    table = pa.table(arrays, names=names)
    _check_duplicates(table, columns, what)
    return table


def _typed(values: Any, column: PushColumn, what: str) -> pa.Array:
    """``values`` as an Arrow array of the column's storage type; RequestError naming the first bad row."""
    import pyarrow as pa

    from featurehouse.sync.layout import storage_arrow_type

    target = storage_arrow_type(column.dtype)
    array = _fast(values, column.dtype, target)
    if array is None:  # find the row that does not convert, and say why
        items = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
        checked = []
        for row, value in enumerate(items):
            try:
                checked.append(_check_value(value, column.dtype))
            except (ValueError, OverflowError) as error:
                raise RequestError(
                    f"{what}: row {row}, column '{column.name}': {error}, got {_shown(value)}; nothing was written"
                ) from None
        array = pa.array(checked, target)
    if column.required and array.null_count:
        import pyarrow.compute as pc

        row = pc.index(pc.is_null(array), True).as_py()
        kind = "a join key" if column.role == "key" else "the event time"
        raise RequestError(f"{what}: row {row}, column '{column.name}': {kind} may not be null; nothing was written")
    return array


_ARROW_KINDS = {
    "int32": ("is_integer",),
    "int64": ("is_integer",),
    "float32": ("is_integer", "is_floating"),
    "float64": ("is_integer", "is_floating"),
    "bool": ("is_boolean",),
    "string": ("is_string", "is_large_string"),
    "bytes": ("is_binary", "is_large_binary"),
    "timestamp": ("is_timestamp",),
}


def _fast(values: Any, dtype: str, target: pa.DataType) -> pa.Array | None:
    """The vectorised conversion of a column whose values are all of the right kind; None: look row by row."""
    import pyarrow as pa

    if dtype not in _ARROW_KINDS:
        return None
    try:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            array = values
        elif isinstance(values, (list, tuple)):
            return None if dtype == "timestamp" else _from_list(values, dtype, target)
        else:  # a pandas Series
            array = pa.array(values, from_pandas=True)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_null(array.type):
            return pa.nulls(len(array), target)
        if not any(getattr(pa.types, kind)(array.type) for kind in _ARROW_KINDS[dtype]):
            return None
        if pa.types.is_timestamp(array.type) and array.type.tz is not None:
            array = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        elif pa.types.is_timestamp(array.type) and array.type.unit == "ns":
            array = array.cast(pa.timestamp("us"), safe=False)  # nanoseconds floored, as the models do
        return array.cast(target)  # safe: an int64 outside int32 fails and is found row by row
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        return None


def _from_list(values: list[Any] | tuple[Any, ...], dtype: str, target: pa.DataType) -> pa.Array | None:
    import pyarrow as pa

    kinds = {
        "int32": (int,),
        "int64": (int,),
        "float32": (int, float),
        "float64": (int, float),
        "bool": (bool,),
        "string": (str,),
        "bytes": (bytes,),
    }[dtype]
    if not all(v is None or (type(v) in kinds) for v in values):
        return None
    if dtype in ("float32", "float64"):
        values = [None if v is None else float(v) for v in values]
    return pa.array(values, target)


def _check_duplicates(table: pa.Table, columns: list[PushColumn], what: str) -> None:
    """Two rows for the same entity, event and created time would be a full tie: refuse the batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ident = [c.name for c in columns if c.role in ("key", "event", "created")]
    if table.num_rows < 2:
        return
    keys = [c.name for c in columns if c.role == "key"]
    if len(keys) == 1 and pc.count_distinct(table.column(keys[0])).as_py() == table.num_rows:
        return  # every entity once: no two rows can tie (the common case, and cheap to see)
    indexed = table.select(ident).append_column("__fh_row", pa.array(range(table.num_rows), pa.int64()))
    grouped = indexed.group_by(ident).aggregate([("__fh_row", "min"), ("__fh_row", "max")])
    doubled = grouped.filter(pc.not_equal(grouped.column("__fh_row_min"), grouped.column("__fh_row_max")))
    if doubled.num_rows:
        first, second = doubled.column("__fh_row_min")[0].as_py(), doubled.column("__fh_row_max")[0].as_py()
        raise RequestError(
            f"{what}: rows {first} and {second} have the same {', '.join(ident)}; push one row per entity and "
            "time (nothing was written)"
        )


# ---- online writes -------------------------------------------------------------------------------------
class Pusher:
    """One store's writer for pushes: one backend connection, writes one at a time (per process)."""

    def __init__(self, store: FeatureStore):
        from featurehouse.sync import open_backend

        self.store = store
        self.backend: Backend = open_backend(store.repo.config.online_store, store.repo_path)
        self.lock = threading.Lock()

    def write(self, layout: ViewLayout, rows: pa.Table, now: datetime) -> tuple[int, int]:
        """Write ``rows`` (normalised) to ``layout``'s view; (written, kept)."""
        at = now.replace(tzinfo=timezone.utc)
        with self.lock:
            try:
                self.backend.connect()
                if self.backend.read_state(layout) is None:
                    # never synced: a first sync now would rebuild the view from its snapshot and drop
                    # this push, so it waits for the sync lock; after it the view has a state, and a sync
                    # writes conditionally (docs/decisions/0022)
                    with self.backend.lock(SYNC_LOCK_WAIT):
                        written = self.backend.push_rows(layout, rows, at)
                else:
                    written = self.backend.push_rows(layout, rows, at)
                return written, self.backend.kept
            except OnlineStoreError:
                self.backend.close()  # reconnect next time
                raise

    def close(self) -> None:
        """Release the store connection."""
        with self.lock:
            self.backend.close()


_PUSHERS: PerStore[Pusher] = PerStore(lambda store: Pusher(store))


def pusher(store: FeatureStore) -> Pusher:
    """The store's pusher, made on first use and kept while the store lives."""
    return _PUSHERS.get(store)


def _view_rows(store: FeatureStore, layout: ViewLayout, rows: pa.Table, batch_columns: dict[str, str]) -> pa.Table:
    """The pushed rows as ``layout``'s columns (keys, event and created time, features), one row per
    entity: its newest. Expressions are evaluated by an in-process DuckDB over the pushed columns."""
    import pyarrow as pa

    from featurehouse.sync.layout import normalise

    view = store.repo.feature_views[layout.name]
    source = store.repo.sources[view.source]
    reverse = {feature: column for column, feature in source.field_mapping.items()}
    if any(f.expression is not None for f in view.features):
        table = _evaluated(store, layout, rows, batch_columns)
    else:  # plain columns: renamed, cast by normalise
        names = [reverse.get(k, k) for k in layout.join_keys]
        names += [batch_columns["event"], batch_columns["created"]]
        names += [reverse.get(f, f) for f in layout.features]
        table = pa.table([rows.column(n) for n in names], names=layout.columns)
    return _newest_per_key(normalise(table, layout), layout)


_DUCKDB: list[Any] = []  # one in-process DuckDB (opening one costs ~70 ms); each call takes a cursor
_DUCKDB_LOCK = threading.Lock()
_SELECTS: dict[tuple[Any, ...], str] = {}  # (layout, view, source, columns) -> the SELECT over the pushed columns


def _evaluated(store: FeatureStore, layout: ViewLayout, rows: pa.Table, batch_columns: dict[str, str]) -> pa.Table:
    import duckdb

    view = store.repo.feature_views[layout.name]
    source = store.repo.sources[view.source]
    key = (layout, repr(view), repr(source), repr(sorted(batch_columns.items())))  # by content, not identity
    sql = _SELECTS.get(key)
    if sql is None:
        sql = _SELECTS[key] = _select_sql(store, layout, batch_columns)
    with _DUCKDB_LOCK:
        if not _DUCKDB:
            _DUCKDB.append(duckdb.connect())
        cursor = _DUCKDB[0].cursor()
    try:
        cursor.register("__fh_pushed", rows)
        return cursor.sql(sql).to_arrow_table()
    except duckdb.Error as error:
        raise RequestError(f"feature view '{layout.name}': the pushed rows do not evaluate: {error}") from None
    finally:
        cursor.close()


def _select_sql(store: FeatureStore, layout: ViewLayout, batch_columns: dict[str, str]) -> str:
    """The view's columns over the pushed columns, cast as its ``fv_`` model casts them (DuckDB SQL)."""
    import sqlglot
    from sqlglot import exp

    from featurehouse.compile.types import sql_type

    view = store.repo.feature_views[layout.name]
    source = store.repo.sources[view.source]
    reverse = {feature: column for column, feature in source.field_mapping.items()}

    def col(name: str) -> exp.Expr:
        return exp.column(name, quoted=True)

    selects: list[exp.Expr] = []
    for key, dtype in zip(layout.join_keys, layout.key_dtypes):
        selects.append(exp.cast(col(reverse.get(key, key)), sql_type(dtype)).as_(key, quoted=True))
    selects.append(col(batch_columns["event"]).as_(EVENT_TIMESTAMP, quoted=True))
    selects.append(col(batch_columns["created"]).as_(CREATED_TIMESTAMP, quoted=True))
    dialect = _dialect(store)
    for feature in view.features:
        value = (
            sqlglot.parse_one(feature.expression, read=dialect)
            if feature.expression is not None
            else col(reverse.get(feature.name, feature.name))
        )
        selects.append(exp.cast(value, sql_type(feature.dtype)).as_(feature.name, quoted=True))
    return exp.select(*selects).from_("__fh_pushed").sql(dialect="duckdb")


def _dialect(store: FeatureStore) -> str:
    try:
        return store.target.dialect
    except FeaturehouseError:
        return "duckdb"  # no dbt target here: expressions as DuckDB reads them


def push(store: FeatureStore, push_source_name: str, df: Any, to: str = "online") -> PushResult:
    """Validate ``df`` against the push source's schema and write it ``to`` online, offline or both."""
    from featurehouse.sync.layout import ViewLayout, utc_now

    if to not in PUSH_MODES:
        raise RequestError(
            f"to: expected one of {', '.join(PUSH_MODES)}, got {excerpt(str(to))}{did_you_mean(str(to), PUSH_MODES)}"
        )
    schema = push_schema(store.repo, push_source_name)
    now = utc_now().replace(tzinfo=None)
    what = f"push source '{push_source_name}'"
    rows = validate_rows(df, list(schema.columns), what, now)
    result = PushResult(rows.num_rows)
    views = [ViewLayout.of(store.repo, store.repo.feature_views[v]) for v in schema.online_views]
    batch_columns = {"event": schema.event, "created": schema.created}
    # every view's rows are made before anything is written: an expression that fails writes nothing
    per_view = [(layout, _view_rows(store, layout, rows, batch_columns)) for layout in views] if to != "offline" else []
    if to in ("offline", "online_and_offline"):
        from featurehouse.sync import offline_log

        given = _columns_of(df)  # the batch is named by the rows as given: a filled-in created time varies
        batch = offline_log.batch_id(rows.select([c for c in rows.column_names if c != schema.created or c in given]))
        logged = rows.append_column(ARRIVED_AT, _arrivals(rows.num_rows, now))
        try:
            offline_log.append(store.target, store.repo_path, push_source_name, logged, batch)
        except FeaturehouseError as error:
            raise PushError(what, "the push log", [], str(error)) from None
        result.offline_batch = batch
    if to == "offline":
        return result
    writer = pusher(store)
    for layout, view_rows in per_view:
        try:
            written, kept = writer.write(layout, view_rows, now)
        except FeaturehouseError as error:
            done = [f"the push log (batch {result.offline_batch})"] if result.offline_batch else []
            done += [f"online view '{v}'" for v in result.online]
            raise PushError(what, f"online view '{layout.name}'", done, str(error)) from None
        result.online[layout.name] = written
        result.kept[layout.name] = kept
    return result


def _arrivals(count: int, now: datetime) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(now, pa.timestamp("us")), count)


def write_to_online_store(store: FeatureStore, feature_view_name: str, df: Any) -> PushResult:
    """Write rows of ``feature_view_name``'s own columns (join keys, event time, features) to the online store only."""
    from featurehouse.sync.layout import ViewLayout, utc_now

    repo = store.repo
    view = repo.feature_views.get(feature_view_name)
    if view is None:
        raise RequestError(
            f"unknown feature view '{feature_view_name}'{did_you_mean(feature_view_name, repo.feature_views)}"
        )
    if not view.online:
        raise RequestError(f"feature view '{feature_view_name}' has online: false; set online: true to write to it")
    layout = ViewLayout.of(repo, view)
    source = repo.sources[view.source]
    given = _columns_of(df)
    event = EVENT_TIMESTAMP if EVENT_TIMESTAMP in given else source.timestamp_field
    # Feast's remote online store sends "created" (feast.infra.online_stores.remote, online_write_batch)
    candidates = (CREATED_TIMESTAMP, source.created_timestamp_column, "created")
    created = next((c for c in candidates if c and c in given), CREATED_TIMESTAMP)
    columns = [PushColumn(k, d, "key") for k, d in zip(layout.join_keys, layout.key_dtypes)]
    columns += [PushColumn(event, "timestamp", "event"), PushColumn(created, "timestamp", "created")]
    columns += [PushColumn(f, d, "value") for f, d in zip(layout.features, layout.dtypes)]
    now = utc_now().replace(tzinfo=None)
    rows = validate_rows(df, columns, f"feature view '{feature_view_name}'", now)
    renamed = rows.rename_columns([*layout.join_keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *layout.features])
    from featurehouse.sync.layout import normalise

    table = _newest_per_key(normalise(renamed, layout), layout)
    written, kept = pusher(store).write(layout, table, now)
    return PushResult(rows.num_rows, {layout.name: written}, {layout.name: kept})


def _newest_per_key(table: pa.Table, layout: ViewLayout) -> pa.Table:
    """One row per entity: the newest by event, then created time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    order = [(k, "ascending") for k in layout.join_keys]
    order += [(EVENT_TIMESTAMP, "descending"), (CREATED_TIMESTAMP, "descending")]
    table = table.sort_by(order)
    first = pa.array([True] + [False] * (table.num_rows - 1))
    for key in layout.join_keys:
        column = table.column(key).combine_chunks()
        differs = pc.fill_null(pc.not_equal(column.slice(1), column.slice(0, table.num_rows - 1)), True)
        first = pc.or_(first, pa.concat_arrays([pa.array([True]), differs]))
    return table.filter(first)


# ---- HTTP (POST /push, POST /write-to-online-store: Feast 0.67's bodies) ----------------------------------
def _body(body: bytes, required: tuple[str, ...]) -> dict[str, Any]:
    import orjson

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(f"the request body is not valid JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RequestError(f"expected a JSON object with {', '.join(required)}")
    for name in required:
        if name not in data:
            unknown = [k for k in data if isinstance(k, str) and len(k) <= 256]
            raise RequestError(f"missing field '{name}'{did_you_mean(name, unknown)}")
    if not isinstance(data["df"], dict):
        raise RequestError('df: expected an object of columns, each a list of values, such as {"driver_id": [1001]}')
    return data


def _name_field(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or len(value) > 256:
        raise RequestError(f"{name}: expected a name (a string of at most 256 characters)")
    return value


def http_push(store: FeatureStore, body: bytes) -> dict[str, Any]:
    """``POST /push``: Feast's ``{"push_source_name", "df", "to"}`` (``allow_registry_cache``,
    ``transform_on_write`` and unknown fields are ignored, as Feast does)."""
    data = _body(body, ("push_source_name", "df"))
    to = data.get("to", "online")
    if not isinstance(to, str):
        raise RequestError(f"to: expected one of {', '.join(PUSH_MODES)}")
    return push(store, _name_field(data, "push_source_name"), data["df"], to).as_dict()


def http_write(store: FeatureStore, body: bytes) -> dict[str, Any]:
    """``POST /write-to-online-store``: Feast's ``{"feature_view_name", "df"}``."""
    data = _body(body, ("feature_view_name", "df"))
    return write_to_online_store(store, _name_field(data, "feature_view_name"), data["df"]).as_dict()
