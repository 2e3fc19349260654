"""Online reads: the latest synced features of entities, with ttl enforced at read time.

Two entry points:

- ``get_online_features(store, features, entity_rows, full_feature_names=False)``, which
  ``FeatureStore.get_online_features`` calls; it keeps one ``OnlineReader`` per store.
- ``OnlineReader(store)``: build it once per process (a server does this at start-up),
  then ``reader.read(features, entity_rows, full_feature_names=False, now=None)`` per
  request. Everything that depends only on the feature list (views, fields, SQL, key
  encoders, decoders) is prepared once and cached by the features tuple, and each call
  costs one round trip per store (Redis: one pipeline for all views and entities).
  Readers are thread-safe; ``close()`` releases connections.

``features`` is a feature service name or a list of ``view:feature`` / ``view`` refs;
``entity_rows`` is a list of dicts (``[{"driver_id": 1001}]``) or a dict of lists
(``{"driver_id": [1001, 1002]}``). Unknown features, missing join keys and join keys of
the wrong type raise ``featurehouse.errors.RequestError`` with one sentence.

A value is ``PRESENT``, ``NOT_FOUND`` (the store holds no row for the entity, or the
feature is declared but has not been synced yet: only what a sync wrote is ever
returned), ``OUTSIDE_MAX_AGE`` (its event time is older than now minus the view's ttl: the
value is returned as None, as ``get_historical_features`` would return it for (entity,
now)) or ``INVALID`` (the stored value is damaged: None, logged once with key and field;
a damaged event time makes the entity's whole row INVALID). See docs/decisions/0012.
A ``NOT_FOUND`` value is None, except in an aggregation view that has been synced: there
the snapshot holds every entity with an event up to its as-of time, so a missing entity
has an empty window and reads as the training data has it (count 0, the others None).
"""

from __future__ import annotations

import base64
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.sync.base import EPOCH, INVALID, UNSYNCED, Marker

if TYPE_CHECKING:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.repo import FeatureRepo
    from featurehouse.sync.base import Reader

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
INVALID_STATUS = "INVALID"  # Feast's FieldStatus.INVALID: the stored value is damaged (see decision 0012)


class OnlineResponse:
    """Feature values per output name, join keys first, one list entry per entity row."""

    __slots__ = ("feature_names", "values", "statuses", "event_timestamps")

    def __init__(
        self,
        feature_names: list[str],
        values: dict[str, list[Any]],
        statuses: dict[str, list[str]],
        event_timestamps: dict[str, list[datetime | None]],
    ):
        self.feature_names = feature_names
        self.values = values
        self.statuses = statuses
        self.event_timestamps = event_timestamps

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        """Like Feast's: ``{name: [value per entity row]}``; with timestamps also ``name__ts`` in epoch seconds."""
        if not include_event_timestamps:
            return {name: list(self.values[name]) for name in self.feature_names}
        result: dict[str, list[Any]] = {}
        for name in self.feature_names:
            result[name] = list(self.values[name])
            result[name + "__ts"] = [0 if t is None else int(t.timestamp()) for t in self.event_timestamps[name]]
        return result

    def to_df(self, include_event_timestamps: bool = False) -> Any:
        """The response as a pandas DataFrame, one row per entity."""
        import pandas as pd

        return pd.DataFrame(self.to_dict(include_event_timestamps))

    def to_feast_json(self) -> dict[str, Any]:
        """Feast's HTTP response body: metadata.feature_names and one result per name."""
        return {
            "metadata": {"feature_names": list(self.feature_names)},
            "results": [
                {
                    "values": [json_value(v) for v in self.values[name]],
                    "statuses": list(self.statuses[name]),
                    "event_timestamps": [
                        (t or EPOCH).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                        for t in self.event_timestamps[name]
                    ],
                }
                for name in self.feature_names
            ],
        }

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"


def json_value(value: Any) -> Any:
    """``value`` as JSON can hold it: timestamps ISO 8601, bytes base64, NaN and infinities null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def shown(value: Any, limit: int = 60) -> str:
    """``value`` for an error message: short, and safe for any input (deep nesting, huge strings or ints)."""
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return f"an object of {len(value)} key(s)"
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # a cycle or an int of more than 4300 digits
        return type(value).__name__
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


# Plans are cached per feature list, by the bytes of their keys: a few huge lists must not
# hold a worker's memory (41 requests naming 250k features once held 1 GB).
PLAN_CACHE_BYTES = 16 * 1024 * 1024


def cache_cost(key: Any) -> int:
    """About what a cache entry keyed by ``key`` (a name, or a tuple of names) holds, in bytes."""
    if isinstance(key, str):
        return 60 + len(key)
    if isinstance(key, tuple):  # a plan's value grows with its names too: counted here per name
        return 200 + sum(100 + cache_cost(k) for k in key)
    return 50


class BoundedCache:
    """A dict bounded by an estimate of its bytes (``cache_cost`` of the keys); oldest entries go first."""

    def __init__(self, max_bytes: int = PLAN_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: dict[Any, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The value cached under ``key``, or None."""
        found = self._items.get(key)
        return None if found is None else found[0]

    def put(self, key: Any, value: Any) -> None:
        """Cache ``value``, evicting the oldest entries beyond the byte budget."""
        cost = cache_cost(key)
        if cost > self.max_bytes // 4:  # one giant entry would evict everything: don't keep it
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            while self._items and self.bytes + cost > self.max_bytes:
                self.bytes -= self._items.pop(next(iter(self._items)))[1]
            self._items[key] = (value, cost)
            self.bytes += cost

    def __len__(self) -> int:
        return len(self._items)


# ---- plans -------------------------------------------------------------------------------------------
class _ViewPlan:
    __slots__ = ("name", "prepared", "outputs", "ttl", "key_index", "missing")

    def __init__(
        self,
        name: str,
        prepared: Any,
        outputs: list[str],
        ttl: int,
        key_index: list[int],
        missing: list[Any] | None = None,
    ):
        self.name = name
        self.prepared = prepared
        self.outputs = outputs
        self.ttl = timedelta(seconds=ttl) if ttl else None
        self.key_index = key_index  # positions of this view's join keys among the plan's entity columns
        # values of an entity the synced snapshot does not hold (aggregation views: an empty window)
        self.missing = missing


class _Plan:
    __slots__ = ("keys", "key_checks", "views", "feature_names")

    def __init__(self, keys: list[str], key_checks: list[Any], views: list[_ViewPlan]):
        self.keys = keys
        self.key_checks = key_checks
        self.views = views
        self.feature_names = keys + [name for v in views for name in v.outputs]


def _key_check(key: str, dtype: str, entity: str) -> Any:
    """A function that returns the key value in its canonical Python type or raises RequestError."""
    expected = {
        "int32": "an integer",
        "int64": "an integer",
        "string": "a string",
        "bytes": "bytes",
        "bool": "a boolean",
    }.get(dtype, dtype)

    def fail(value: Any, row: int) -> RequestError:
        return RequestError(
            f"entity row {row}: join key '{key}' of entity '{entity}' must be {expected} ({dtype}), "
            f"got {shown(value)} ({type(value).__name__})"
        )

    if dtype in ("int32", "int64"):
        bits = 31 if dtype == "int32" else 63
        low, high = -(1 << bits), (1 << bits) - 1

        def check(value: Any, row: int) -> Any:
            if type(value) is not int:
                if isinstance(value, bool) or not hasattr(value, "__index__"):
                    raise fail(value, row)
                value = value.__index__()  # numpy integers
            if not low <= value <= high:  # no store could even look it up (Postgres: "bigint out of range")
                raise RequestError(
                    f"entity row {row}: join key '{key}' of entity '{entity}' is {dtype}, "
                    f"and {value} is outside its range {low}..{high}"
                )
            return value
    elif dtype == "string":

        def check(value: Any, row: int) -> Any:
            if type(value) is str:
                return value
            raise fail(value, row)
    elif dtype == "bytes":

        def check(value: Any, row: int) -> Any:
            if isinstance(value, (bytes, bytearray)):
                return bytes(value)
            raise fail(value, row)
    elif dtype == "bool":

        def check(value: Any, row: int) -> Any:
            if isinstance(value, bool):
                return value
            raise fail(value, row)
    else:
        raise RequestError(
            f"join key '{key}' of entity '{entity}' has dtype {dtype}, which online reads do not support"
        )
    return check


class OnlineReader:
    """Reads features from the store's online store; build once, call ``read`` per request."""

    def __init__(self, store: FeatureStore, timeout: float | None = None):
        from featurehouse.sync import open_backend

        self.repo: FeatureRepo = store.repo
        self._backend = open_backend(self.repo.config.online_store, store.repo_path)
        # timeout: each store call gives up after about that many seconds (the server's deadline)
        self._reader: Reader = self._backend.reader(timeout)
        self._plans = BoundedCache()

    def close(self) -> None:
        """Close the online store's connections."""
        self._reader.close()

    # ---- planning (once per feature list) ----------------------------------------------------
    def plan(self, features: Sequence[str] | str, full_feature_names: bool = False) -> _Plan:
        """The read plan of a feature list (views, keys, checks), built once and cached."""
        cache_key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._build_plan(features, full_feature_names)
            self._plans.put(cache_key, plan)
        return plan

    def ping(self) -> None:
        """One round trip to the online store; OnlineStoreError when it does not answer."""
        self._reader.ping()

    def interrupt(self, thread_id: int) -> None:
        """Make the store call running in thread ``thread_id`` fail now (the caller's deadline passed)."""
        self._reader.interrupt(thread_id)

    def loop_reads(self, timeout: float) -> Any:
        """Reads of the store for an asyncio event loop (``await reads.read(requests)``), or None: threads only.

        Redis has them (featurehouse.sync.redis_async); ``read`` answers None where only
        the threaded ``Reader.read`` may answer, and the caller then reads through it.
        """
        if self.repo.config.online_store.type != "redis":
            return None
        from featurehouse.sync.redis_async import AsyncRedisReads

        return AsyncRedisReads.of(self._reader, timeout)

    def _build_plan(self, features: Sequence[str] | str, full_feature_names: bool) -> _Plan:
        from featurehouse.spec.outputs import JoinPlan, check_output_names
        from featurehouse.sync.layout import ViewLayout

        if not isinstance(features, str):
            features = list(features)
        selections = tuple(self.repo.resolve_features(features))
        join_plan = JoinPlan(selections, full_feature_names)
        check_output_names(join_plan)
        keys: list[str] = []
        checks: list[Any] = []
        views: list[_ViewPlan] = []
        for selection in selections:
            view = selection.view
            if not view.online:
                raise RequestError(
                    f"feature view '{view.name}' has online: false, so it is not in the online store; "
                    "set online: true and run 'featurehouse sync'"
                )
            layout = ViewLayout.of(self.repo, view)
            for key, dtype in zip(layout.join_keys, layout.key_dtypes):
                if key not in keys:
                    keys.append(key)
                    checks.append(_key_check(key, dtype, self.repo.key_entity(view, key).name))
            prepared = self._reader.prepare(layout, selection.features)
            outputs = [join_plan.prefix(view) + f for f in selection.features]
            missing = None
            if view.is_aggregation:
                from featurehouse.plan.aggregations import empty_window_values

                empty = empty_window_values(view)
                missing = [empty[f] for f in selection.features]
            views.append(
                _ViewPlan(view.name, prepared, outputs, view.ttl, [keys.index(k) for k in layout.join_keys], missing)
            )
        return _Plan(keys, checks, views)

    # ---- reading --------------------------------------------------------------------------------
    def read(
        self,
        features: Sequence[str] | str,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        full_feature_names: bool = False,
        now: datetime | None = None,
        request_data: Mapping[str, Sequence[Any]] | None = None,
    ) -> OnlineResponse:
        """The latest values of ``features`` for each entity row, with statuses and event timestamps.

        Request-time features (request views) are computed from the values read and the request
        data: ``request_data`` (a dict of lists) or the entity rows' other columns.
        """
        if self.repo.request_views:
            from featurehouse.online import request_features

            request_plan = request_features.online_plan(self.repo, features, full_feature_names)
            if request_plan is not None:
                inner = self.read(request_plan.inner, entity_rows, True, now) if request_plan.inner else None
                return OnlineResponse(*request_features.evaluate(request_plan, inner, entity_rows, request_data))
        plan, columns, requests = self._stage(features, entity_rows, full_feature_names)
        rows_per_view = self._reader.read(requests) if requests else [[] for _ in plan.views]
        return self.finish(plan, columns, rows_per_view, now)

    def stage(
        self,
        features: Sequence[str] | str,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        full_feature_names: bool = False,
    ) -> tuple[_Plan, list[list[Any]], list[tuple[Any, list[tuple[Any, ...]]]]] | None:
        """The first half of ``read``: (plan, join-key columns, the store's requests), checked.

        The caller reads the requests from the store itself (the server: on its event loop)
        and passes the rows to ``finish``; no requests means no entity rows (nothing to read).
        None when request-time features take part: call ``read``.
        """
        if self.repo.request_views:
            from featurehouse.online import request_features

            if request_features.online_plan(self.repo, features, full_feature_names) is not None:
                return None
        return self._stage(features, entity_rows, full_feature_names)

    def _stage(
        self, features: Sequence[str] | str, entity_rows: Any, full_feature_names: bool
    ) -> tuple[_Plan, list[list[Any]], list[tuple[Any, list[tuple[Any, ...]]]]]:
        plan = self.plan(features, full_feature_names)
        columns = _entity_columns(plan, entity_rows)
        if not columns or not columns[0]:
            return plan, columns, []
        requests = []
        for view in plan.views:
            index = view.key_index
            if len(index) == 1:
                keys = [(v,) for v in columns[index[0]]]
            else:
                keys = list(zip(*(columns[i] for i in index)))
            requests.append((view.prepared, keys))
        return plan, columns, requests

    def finish(
        self, plan: _Plan, columns: list[list[Any]], rows_per_view: Sequence[Any], now: datetime | None = None
    ) -> OnlineResponse:
        """The second half of ``read``: the answer from the store's rows per view, ttl enforced at ``now``."""
        n = len(columns[0]) if columns else 0
        if now is None:
            now = datetime.now(timezone.utc)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)  # naive timestamps are UTC
        values: dict[str, list[Any]] = {}
        statuses: dict[str, list[str]] = {}
        stamps: dict[str, list[datetime | None]] = {}
        for key, column in zip(plan.keys, columns):
            values[key] = column
            statuses[key] = [PRESENT] * n
            stamps[key] = [None] * n
        for view, rows in zip(plan.views, rows_per_view):
            missing = view.missing
            if rows is None:  # the view was never synced: nothing is known of any entity
                rows, missing = [None] * n, None
            unsynced = getattr(rows, "unsynced", None)
            if unsynced and missing is not None:  # an empty window is known only of synced features
                missing = [None if j in unsynced else v for j, v in enumerate(missing)]
            cutoff = now - view.ttl if view.ttl is not None else None
            view_status: list[str] = []
            view_stamps: list[datetime | None] = []
            view_values: list[Any] = []
            marked = bool(unsynced)  # some values are markers (UNSYNCED, INVALID): statuses per feature
            for row in rows:
                if row is None:
                    view_status.append(NOT_FOUND)
                    view_stamps.append(None)
                    view_values.append(missing)
                elif row[0] is INVALID:  # the event time is damaged: nothing of the row can be trusted
                    view_status.append(INVALID_STATUS)
                    view_stamps.append(None)
                    view_values.append(None)
                elif cutoff is not None and row[0] < cutoff:
                    view_status.append(OUTSIDE_MAX_AGE)
                    view_stamps.append(row[0])
                    view_values.append(None)
                else:
                    view_status.append(PRESENT)
                    view_stamps.append(row[0])
                    view_values.append(row[1])
                    if not marked and any(isinstance(v, Marker) for v in row[1]):
                        marked = True
            for j, name in enumerate(view.outputs):
                column = [None if r is None else r[j] for r in view_values]
                status = view_status if j == 0 else list(view_status)
                if marked:
                    status = list(status)
                    for i, v in enumerate(column):
                        if isinstance(v, Marker):
                            status[i] = NOT_FOUND if v is UNSYNCED else INVALID_STATUS
                            column[i] = None
                values[name] = column
                statuses[name] = status
                stamps[name] = view_stamps if j == 0 else list(view_stamps)
        return OnlineResponse(plan.feature_names, values, statuses, stamps)


def _entity_columns(plan: _Plan, entity_rows: Any) -> list[list[Any]]:
    """The plan's join-key columns from the entity rows, type-checked."""
    if isinstance(entity_rows, Mapping):
        columns = []
        length = None
        for key, check in zip(plan.keys, plan.key_checks):
            if key not in entity_rows:
                raise RequestError(
                    f"the entities have no '{key}', a join key of the requested features"
                    f"{did_you_mean(key, entity_rows)}"
                )
            column = entity_rows[key]
            if isinstance(column, (str, bytes, Mapping)) or not isinstance(column, Iterable):
                raise RequestError(
                    f"entity column '{key}' must be a list of values, such as "
                    f"{{'{key}': [{shown(column)}]}}, not {type(column).__name__}"
                )
            column = list(column)
            if length is not None and len(column) != length:
                raise RequestError(f"entity column '{key}' has {len(column)} values, but '{plan.keys[0]}' has {length}")
            length = len(column)
            columns.append([check(v, i) for i, v in enumerate(column)])
        return columns
    if isinstance(entity_rows, (str, bytes)) or not isinstance(entity_rows, Sequence):
        raise RequestError(
            f"entity_rows must be a list of dicts such as [{{'{plan.keys[0] if plan.keys else 'id'}': 1}}] "
            f"or a dict of lists, not {type(entity_rows).__name__}"
        )
    columns = [[] for _ in plan.keys]
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise RequestError(f"entity row {i} must be a dict of join keys, not {type(row).__name__}")
        for column, key, check in zip(columns, plan.keys, plan.key_checks):
            try:
                value = row[key]
            except KeyError:
                raise RequestError(
                    f"entity row {i} has no '{key}', a join key of the requested features{did_you_mean(key, row)}"
                ) from None
            column.append(check(value, i))
    return columns


T = TypeVar("T")


class PerStore(Generic[T]):
    """One ``make(store)`` per FeatureStore, made on first use and dropped with the store.

    The read without the lock is the hot path (a dict lookup); the lock only keeps two
    threads from making two of them.
    """

    def __init__(self, make: Callable[[FeatureStore], T]):
        self._make = make
        self._lock = threading.Lock()
        self._made: weakref.WeakKeyDictionary[FeatureStore, T] = weakref.WeakKeyDictionary()

    def get(self, store: FeatureStore) -> T:
        """The store's one, made now if it has none."""
        made = self._made.get(store)
        if made is None:
            with self._lock:
                made = self._made.get(store)
                if made is None:
                    made = self._made[store] = self._make(store)
        return made


_readers: PerStore[OnlineReader] = PerStore(lambda store: OnlineReader(store))


def reader_for(store: FeatureStore) -> OnlineReader:
    """The store's OnlineReader, created on first use (and dropped with the store)."""
    return _readers.get(store)


def get_online_features(
    store: FeatureStore,
    features: Sequence[str] | str,
    entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    full_feature_names: bool = False,
    request_data: Mapping[str, Sequence[Any]] | None = None,
) -> OnlineResponse:
    """The latest synced value of each feature for each entity row, ttl enforced now."""
    return reader_for(store).read(features, entity_rows, full_feature_names, request_data=request_data)
