"""Online vector search: ``FeatureStore.retrieve_online_documents`` and ``POST /retrieve-online-documents``.

A request names features of one feature view that has a vector feature (``vector:`` in its
spec), a query vector and ``top_k``; the answer is the ``top_k`` documents nearest the query,
best first, with the join keys, the requested features and a ``distance`` column (Feast's
names and shapes). Everything a user can get wrong is checked here once, with one sentence
(RequestError), before the store is asked; the store (``Backend.search``) applies the rules
of docs/vector-search.md: distance, order (distance, then join keys), ttl, ``where``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean, excerpt
from featurehouse.online.reader import PerStore
from featurehouse.sync.search_types import MAX_TOP_K, METRICS, SearchHit, SearchRequest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.model import FeatureView
    from featurehouse.spec.repo import FeatureRepo
    from featurehouse.sync.base import Backend
    from featurehouse.sync.layout import ViewLayout

DISTANCE = "distance"
MAX_WHERE = 16
# Feast's and other spellings of the metrics
_METRIC_SPELLINGS = {
    "l2": "l2",
    "euclidean": "l2",
    "cosine": "cosine",
    "inner_product": "inner_product",
    "ip": "inner_product",
    "dot": "inner_product",
    "dot_product": "inner_product",
}


class DocumentsResponse:
    """The documents a search found, best first: join keys, requested features, ``distance``."""

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]], event_timestamps: list[datetime]):
        self.columns = columns
        self.rows = rows
        self.event_timestamps = event_timestamps

    def to_dict(self) -> dict[str, list[Any]]:
        """``{column: [value per document]}``, documents best first (Feast's shape)."""
        return {name: [row[i] for row in self.rows] for i, name in enumerate(self.columns)}

    def to_df(self) -> pd.DataFrame:
        """The documents as a pandas DataFrame, one row per document, best first."""
        import pandas as pd

        return pd.DataFrame(self.to_dict(), columns=self.columns)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class _Target:
    """A checked feature list: the view, its layout and vector feature, the requested features."""

    view: FeatureView
    layout: ViewLayout
    vector: str
    dimensions: int
    metric: str
    features: tuple[str, ...]


def _target(repo: FeatureRepo, features: Any) -> _Target:
    from featurehouse.sync.layout import ViewLayout

    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise RequestError(f"features must be a non-empty list of 'view:feature' strings, got {excerpt(features)}")
    for ref in features:
        if not isinstance(ref, str):
            raise RequestError(f"features must hold 'view:feature' strings, got {excerpt(ref)}")
    selections = repo.resolve_features(list(features))
    searchable = sorted(n for n, v in repo.feature_views.items() if v.vector_feature is not None)
    if len(selections) != 1:
        raise RequestError(
            "a document search reads one feature view, but features names "
            f"{', '.join(repr(s.view.name) for s in selections)}; search each view on its own"
        )
    view = selections[0].view
    vector = view.vector_feature
    if vector is None or vector.vector is None:
        others = f" (views with one: {', '.join(searchable)})" if searchable else " (no feature view has one)"
        raise RequestError(
            f"feature view '{view.name}' has no vector feature to search; give an array<float32> feature "
            f"a vector: {{dimensions, metric}} in its spec{others}"
        )
    if not view.online:
        raise RequestError(f"feature view '{view.name}' is not online (online: false), so it cannot be searched")
    return _Target(
        view,
        ViewLayout.of(repo, view),
        vector.name,
        vector.vector.dimensions,
        vector.vector.metric,
        tuple(selections[0].features),
    )


def check_query(query: Any, target: _Target) -> np.ndarray:
    """The query as a float32 vector; RequestError when it is not one the index can search."""
    import numpy as np

    where = f"the vector feature '{target.view.name}:{target.vector}'"
    if isinstance(query, (str, bytes, Mapping)) or query is None:
        raise RequestError(f"query must be a list of {target.dimensions} numbers, got {excerpt(query)}")
    if not isinstance(query, np.ndarray) and any(isinstance(x, (bool, str, bytes)) for x in query):
        bad = next(x for x in query if isinstance(x, (bool, str, bytes)))
        raise RequestError(f"query must be a list of numbers, but it holds {excerpt(bad)}")
    try:
        values = np.asarray(query, dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError(f"query must be a list of {target.dimensions} numbers, got {excerpt(query)}") from None
    if values.ndim != 1:
        raise RequestError(f"query must be one flat list of numbers, got an array of shape {values.shape}")
    if len(values) != target.dimensions:
        raise RequestError(f"query has {len(values)} numbers, but {where} has {target.dimensions} dimensions")
    finite = np.isfinite(values) & (np.abs(values) <= np.finfo(np.float32).max)
    if not finite.all():
        position = int(np.flatnonzero(~finite)[0])
        raise RequestError(
            f"query[{position}] is {float(values[position])!r}; a query must hold finite float32 numbers "
            "(no NaN or infinity)"
        )
    if target.metric == "cosine" and not values.any():
        raise RequestError(f"query is all zeros, which has no direction for the cosine distance of {where}")
    return values.astype(np.float32)


def check_top_k(top_k: Any) -> int:
    """``top_k`` if it is a whole number from 1 to MAX_TOP_K, else RequestError."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise RequestError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {excerpt(top_k)}")
    return top_k


def check_metric(distance_metric: Any, target: _Target) -> None:
    """RequestError unless ``distance_metric`` (when given) is the index's metric."""
    if distance_metric is None:
        return
    spelled = _METRIC_SPELLINGS.get(str(distance_metric).strip().lower())
    if spelled is None:
        raise RequestError(
            f"distance_metric must be one of {', '.join(METRICS)}, got {excerpt(distance_metric)}"
            f"{did_you_mean(str(distance_metric).lower(), METRICS)}"
        )
    if spelled != target.metric:
        raise RequestError(
            f"distance_metric is {spelled}, but the vector index of '{target.view.name}:{target.vector}' ranks by "
            f"{target.metric} (its spec's vector.metric); leave distance_metric out or change the spec"
        )


_WHERE_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int32": (int,),
    "int64": (int,),
    "float32": (int, float),
    "float64": (int, float),
    "string": (str,),
    "bytes": (bytes,),
    "timestamp": (datetime, str),
}


def check_where(where: Any, target: _Target) -> tuple[tuple[str, Any], ...]:
    """``where`` as (feature, value) pairs: equality filters on scalar features of the view."""
    if where is None:
        return ()
    if not isinstance(where, Mapping):
        raise RequestError(f"where must be a mapping of feature to value, got {excerpt(where)}")
    if len(where) > MAX_WHERE:
        raise RequestError(f"where has {len(where)} filters; the limit is {MAX_WHERE}")
    layout = target.layout
    pairs = []
    for name, value in where.items():
        if name not in layout.features:
            raise RequestError(
                f"where names unknown feature {excerpt(name)} of feature view '{target.view.name}'"
                f"{did_you_mean(str(name), layout.features)}"
            )
        dtype = layout.dtype(name)
        if dtype.startswith("array<"):
            raise RequestError(f"where can filter on scalar features only; '{name}' is {dtype}")
        if value is None:
            raise RequestError(f"where.{name} is null; filters match equal values, and null equals nothing")
        kinds = _WHERE_TYPES[dtype]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RequestError(f"where.{name} must be a {dtype} value, got {excerpt(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError(f"where.{name} is {value!r}, which equals nothing; filter on a finite number")
        if dtype == "timestamp" and isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise RequestError(f"where.{name} must be an ISO 8601 timestamp, got {excerpt(value)}") from None
        pairs.append((str(name), value))
    return tuple(pairs)


_targets: PerStore[dict[tuple[str, ...], _Target]] = PerStore(lambda store: {})


def _cached_target(store: FeatureStore, features: Any) -> _Target:
    """``_target`` of a feature list, made once per store (the repo does not change under it)."""
    if not isinstance(features, (list, tuple)) or not all(isinstance(f, str) for f in features):
        return _target(store.repo, features)
    known = _targets.get(store)
    key = tuple(features)
    target = known.get(key)
    if target is None:
        target = _target(store.repo, features)
        if len(known) < 256:
            known[key] = target
    return target


def _open_backend(store: FeatureStore) -> Backend:
    from featurehouse.sync import open_backend

    return open_backend(store.repo.config.online_store, store.repo_path)


_backends: PerStore[Backend] = PerStore(_open_backend)


def backend_of(store: FeatureStore) -> Backend:
    """The store's online backend, opened once per FeatureStore."""
    return _backends.get(store)


def retrieve_online_documents(
    store: FeatureStore,
    features: Sequence[str],
    query: Sequence[float] | np.ndarray,
    top_k: int = 10,
    distance_metric: str | None = None,
    where: Mapping[str, Any] | None = None,
    exact: bool = False,
    full_feature_names: bool = False,
    now: datetime | None = None,
) -> DocumentsResponse:
    """The ``top_k`` documents nearest ``query``, best first (see the module docstring)."""
    target = _cached_target(store, features)
    if not isinstance(exact, bool):
        raise RequestError(f"exact must be true or false, got {excerpt(exact)}")
    check_metric(distance_metric, target)
    request = SearchRequest(
        vector_feature=target.vector,
        features=target.features,
        query=check_query(query, target),
        top_k=check_top_k(top_k),
        metric=target.metric,
        where=check_where(where, target),
        not_before=_not_before(target.layout.ttl, now),
        exact=exact,
    )
    hits = backend_of(store).search(target.layout, request)
    return _response(target, hits, full_feature_names)


def _not_before(ttl: int, now: datetime | None) -> datetime | None:
    if not ttl:
        return None
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now - timedelta(seconds=ttl)


def _response(target: _Target, hits: list[SearchHit], full_feature_names: bool) -> DocumentsResponse:
    names = [f"{target.view.name}__{f}" if full_feature_names else f for f in target.features]
    columns = [*target.layout.join_keys, *names, DISTANCE]
    rows = [(*hit.key, *hit.values, hit.distance) for hit in hits]
    return DocumentsResponse(columns, rows, [hit.event_timestamp for hit in hits])


# ---- HTTP -------------------------------------------------------------------------------------------
_BODY_FIELDS = ("features", "feature_service", "full_feature_names", "top_k", "query", "query_string", "api_version")
_OWN_FIELDS = ("distance_metric", "where", "exact")


def parse_body(repo: FeatureRepo, data: Any) -> dict[str, Any]:
    """The keyword arguments of ``retrieve_online_documents`` from Feast 0.67's request body."""
    if not isinstance(data, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(data).__name__}")
    unknown = [k for k in data if k not in _BODY_FIELDS + _OWN_FIELDS]
    if unknown:
        hint = did_you_mean(str(unknown[0]), _BODY_FIELDS + _OWN_FIELDS)
        raise RequestError(f"unknown field {excerpt(unknown[0])} in the request body{hint}")
    if data.get("query_string") is not None:
        raise RequestError("query_string (text search) is not supported: send query, a vector of numbers")
    version = data.get("api_version", 1)
    if version not in (None, 1, 2) or isinstance(version, bool):
        raise RequestError(f"api_version must be 1 or 2, got {excerpt(version)}")
    features = data.get("features") or []
    service = data.get("feature_service")
    if service is not None:
        if features:
            raise RequestError("name either features or feature_service, not both")
        if not isinstance(service, str) or service not in repo.feature_services:
            raise RequestError(
                f"unknown feature service {excerpt(service)}{did_you_mean(str(service), repo.feature_services)}"
            )
        features = list(repo.feature_services[service].features)
    if "query" not in data or data["query"] is None:
        raise RequestError("query is missing: send the query vector as a list of numbers")
    full = data.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise RequestError(f"full_feature_names must be true or false, got {excerpt(full)}")
    top_k = data.get("top_k")
    return {
        "features": features,
        "query": data["query"],
        "top_k": 10 if top_k is None else top_k,
        "distance_metric": data.get("distance_metric"),
        "where": data.get("where"),
        "exact": data.get("exact", False),
        "full_feature_names": full,
    }


def http_answer(store: FeatureStore, body: bytes) -> dict[str, Any]:
    """The JSON answer to one ``POST /retrieve-online-documents`` body; RequestError when it is wrong."""
    import json

    try:
        data = json.loads(body)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(f"the request body is not valid JSON: {error}") from None
    return to_json(retrieve_online_documents(store, **parse_body(store.repo, data)))


def to_json(response: DocumentsResponse, columns: bool = False) -> dict[str, Any]:
    """Feast's column-major answer: ``metadata.feature_names`` and one ``results`` entry per column.

    With ``columns``: ``{column: [value per document]}`` (``to_dict()`` in JSON forms).
    """
    if columns:
        return {name: [_json_value(v) for v in values] for name, values in response.to_dict().items()}
    stamps = [_iso(t) for t in response.event_timestamps]
    results = []
    for i in range(len(response.columns)):
        values = [_json_value(row[i]) for row in response.rows]
        results.append(
            {
                "values": values,
                "statuses": ["PRESENT" if v is not None else "NULL_VALUE" for v in values],
                "event_timestamps": stamps,
            }
        )
    return {"metadata": {"feature_names": list(response.columns)}, "results": results}


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if type(value).__name__ == "Marker":  # a corrupt stored value (INVALID)
        return None
    return value


# ---- CLI --------------------------------------------------------------------------------------------
def cli_query(text: str) -> list[float]:
    """``--query``: a JSON list of numbers, or numbers split by commas."""
    import json

    stripped = text.strip()
    try:
        value = json.loads(stripped) if stripped.startswith("[") else [float(x) for x in stripped.split(",")]
    except ValueError:
        raise RequestError(
            f"--query expects a JSON list of numbers or numbers split by commas, got {excerpt(text)}"
        ) from None
    if not isinstance(value, list):
        raise RequestError(f"--query expects a list of numbers, got {excerpt(text)}")
    return value


def cli_where(repo: FeatureRepo, features: Sequence[str], options: Sequence[str]) -> dict[str, Any] | None:
    """``--where feature=value`` options as filters, each value read as its feature's dtype."""
    if not options:
        return None
    target = _target(repo, list(features))
    where: dict[str, Any] = {}
    for option in options:
        name, sep, text = option.partition("=")
        if not sep or not name:
            raise RequestError(f"--where expects feature=value such as lang=pt, got {excerpt(option)}")
        if name not in target.layout.features:
            raise RequestError(
                f"--where {option}: unknown feature '{name}' of feature view '{target.view.name}'"
                f"{did_you_mean(name, target.layout.features)}"
            )
        dtype = target.layout.dtype(name)
        try:
            if dtype in ("int32", "int64"):
                where[name] = int(text)
            elif dtype in ("float32", "float64"):
                where[name] = float(text)
            elif dtype == "bool":
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                where[name] = text.lower() in ("true", "1")
            elif dtype == "bytes":
                where[name] = text.encode()
            else:
                where[name] = text
        except ValueError:
            raise RequestError(f"--where {option}: '{name}' is {dtype}, and {excerpt(text)} is not one") from None
    return where
