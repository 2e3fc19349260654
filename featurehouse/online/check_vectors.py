"""``featurehouse check`` for views with a vector feature: online search against offline retrieval.

For a sample of queries (the vectors of documents spread evenly over the snapshot's key
range, the same every run), the audit runs

- the exact online search (``exact=True``) as of the view's last sync time (ttl applied
  then), and
- the offline point-in-time retrieval (``get_historical_documents``) at that same time,

and lists every query whose documents or distances differ. Distances agree within
``DISTANCE_TOLERANCE`` (absolute, plus the same relative): the stores compute in float32
(sqlite-vec, pgvector) and the warehouses in float32 or float64, so the last bits differ;
for the same reason two documents whose distances are that close may come back in either
order, and the one at the cut-off of the top k may be either one.

It also reports the recall@k of the default search (``exact=False``: the HNSW index on
Postgres) against the exact search over the same queries: the share of the exact top k
that the index finds, where a document tied with the k-th at the cut-off counts as found
(``_found``). An exact store (SQLite's sqlite-vec) has recall 1.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync.layout import ViewLayout

DISTANCE_TOLERANCE = 1e-4
TOP_K = 10
MAX_QUERIES = 20


def _found(exact: list[tuple[tuple[Any, ...], float]], approximate: list[float]) -> int:
    """How many of the exact top k the approximate search found, tie-aware (as ann-benchmarks counts):
    a hit counts when its distance is within the exact k-th distance (plus the tolerance), so that
    of several documents tied at the cut-off any one is a right answer."""
    if not exact:
        return 0
    cut_off = exact[-1][1] + DISTANCE_TOLERANCE * (1 + abs(exact[-1][1]))
    return min(len(exact), sum(1 for distance in approximate if distance <= cut_off))


def sample_queries(snapshot: pa.Table, layout: ViewLayout, count: int) -> list[list[float]]:
    """Up to ``count`` document vectors of the snapshot usable as queries, evenly spread by key."""
    assert layout.vector is not None
    name, dimensions, metric = layout.vector
    ordered = snapshot.sort_by([(k, "ascending") for k in layout.join_keys])
    usable = []
    for vector in ordered.column(name).to_pylist():
        if vector is None or len(vector) != dimensions or not all(math.isfinite(x) for x in vector):
            continue
        if metric == "cosine" and not any(vector):
            continue
        usable.append([float(x) for x in vector])
    if len(usable) <= count:
        return usable
    step = len(usable) / count
    return [usable[int(i * step)] for i in range(count)]


def audit_search(
    store: FeatureStore, layout: ViewLayout, snapshot: pa.Table, synced_at: datetime, sample: int
) -> tuple[str, list[str]]:
    """Compare online search with offline retrieval for ``layout``'s view; (summary, differences)."""
    import pyarrow as pa

    from featurehouse.online.search import retrieve_online_documents

    assert layout.vector is not None
    vector_name = layout.vector[0]
    queries = sample_queries(snapshot, layout, min(sample, MAX_QUERIES))
    when = _utc_text(synced_at)
    if not queries:
        return f"{layout.name}: no document vector to search with, nothing to compare", []
    scalar = [
        f for f, dtype in zip(layout.features, layout.dtypes) if f != vector_name and not dtype.startswith("array<")
    ]
    refs = [f"{layout.name}:{f}" for f in (scalar[:1] or [vector_name])]
    moment = synced_at.astimezone(timezone.utc).replace(tzinfo=None)
    spine = pa.table(
        {
            "event_timestamp": pa.array([moment] * len(queries), pa.timestamp("us")),
            "query": pa.array(queries, pa.list_(pa.float32())),
        }
    )
    offline = store.get_historical_documents(spine, refs, top_k=TOP_K).to_arrow()
    offline_hits: list[list[tuple[tuple[Any, ...], float]]] = [[] for _ in queries]
    rows = offline.to_pylist()
    # one row per hit, in spine order, so the spine row is the running count of rank-1 or hitless rows
    index = -1
    for row in rows:
        if row["rank"] is None or row["rank"] == 1:
            index += 1
        if row["rank"] is not None:
            offline_hits[index].append((tuple(row[k] for k in layout.join_keys), row["distance"]))
    differences: list[str] = []
    found_total, exact_total = 0, 0
    for i, query in enumerate(queries):
        exact = retrieve_online_documents(store, refs, query, top_k=TOP_K, exact=True, now=synced_at).to_dict()
        online = [
            (tuple(exact[k][j] for k in layout.join_keys), float(exact["distance"][j]))
            for j in range(len(exact["distance"]))
        ]
        problem = compare_hits(online, offline_hits[i])
        if problem:
            document = _key_text(layout, queries, i, snapshot)
            differences.append(f"{layout.name} query {i + 1} (the vector of document {document}): {problem}")
        approximate = retrieve_online_documents(store, refs, query, top_k=TOP_K, now=synced_at).to_dict()
        found_total += _found(online, [float(d) for d in approximate["distance"]])
        exact_total += len(online)
    recall = found_total / exact_total if exact_total else 1.0
    summary = (
        f"{layout.name}: {len(queries)} searches (top {TOP_K}) compared with offline retrieval as of the sync at "
        f"{when} UTC, {len(differences)} difference(s); recall@{TOP_K} of the index against exact search: {recall:.2f}"
    )
    return summary, differences


def compare_hits(online: list[tuple[tuple[Any, ...], float]], offline: list[tuple[tuple[Any, ...], float]]) -> str:
    """Why two ranked hit lists differ, or '' when they agree within DISTANCE_TOLERANCE.

    They agree when they have as many hits, the distances rank by rank are within the
    tolerance, and they hold the same documents, except that documents whose distance is
    within the tolerance of the last hit's may be swapped for one another (a near tie at
    the cut-off).
    """
    if len(online) != len(offline):
        return f"online returns {len(online)} document(s), offline {len(offline)}"
    for rank, ((on_key, on_distance), (off_key, off_distance)) in enumerate(zip(online, offline), start=1):
        if not _close(on_distance, off_distance):
            return (
                f"rank {rank}: online {_key(on_key)} at distance {on_distance:.6g}, "
                f"offline {_key(off_key)} at {off_distance:.6g}"
            )
    if not online:
        return ""
    last = online[-1][1]
    on_keys = {key for key, d in online if not _close(d, last)}
    off_keys = {key for key, d in offline if not _close(d, last)}
    if on_keys != off_keys:
        missing = sorted(off_keys - on_keys, key=str) or sorted(on_keys - off_keys, key=str)
        side = "online" if off_keys - on_keys else "offline"
        return f"document {_key(missing[0])} is missing {side}"
    return ""


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=DISTANCE_TOLERANCE, abs_tol=DISTANCE_TOLERANCE)


def _key(key: tuple[Any, ...]) -> str:
    return ", ".join(repr(k) for k in key)


def _key_text(layout: ViewLayout, queries: list[list[float]], i: int, snapshot: pa.Table) -> str:
    """The key of the document whose vector is query ``i`` (the first one with it)."""
    assert layout.vector is not None
    vectors = snapshot.column(layout.vector[0]).to_pylist()
    for row, vector in enumerate(vectors):
        if vector is not None and [float(x) for x in vector] == queries[i]:
            return ", ".join(f"{k}={snapshot.column(k)[row].as_py()!r}" for k in layout.join_keys)
    return "?"


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
