"""Test support for vector search: a document repo, direct store writes, a numpy reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from support.repos import write_repo

DOC_SPECS = """\
entities:
  - name: doc
    join_keys: [doc_id]
    value_type: int64
sources:
  - name: doc_source
    path: data/docs.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: docs
    entities: [doc]
    source: doc_source
    ttl: 3d
    schema:
      - {name: title, dtype: string}
      - {name: lang, dtype: string}
      - {name: embedding, dtype: array<float32>, vector: {dimensions: DIMS, metric: METRIC}}
  - name: plain
    entities: [doc]
    source: doc_source
    schema:
      - {name: title, dtype: string}
"""

DOC_SCHEMA = pa.schema([("doc_id", pa.int64()), ("event_timestamp", pa.timestamp("us")), ("title", pa.string()),
                        ("lang", pa.string()), ("embedding", pa.list_(pa.float32()))])


def write_doc_repo(root: Path, rows: list[dict[str, Any]], dims: int = 4, metric: str = "cosine",
                   online_store: str = "  type: sqlite\n  path: data/online.db\n") -> Path:
    """A feature repo whose view ``docs`` holds ``rows`` (not compiled or built yet)."""
    specs = DOC_SPECS.replace("DIMS", str(dims)).replace("METRIC", metric)
    write_repo(root, {"docs.yml": specs}, online_store=online_store)
    write_docs(root, rows)
    return root


def write_docs(root: Path, rows: list[dict[str, Any]]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), root / "data" / "docs.parquet")


@dataclass
class Doc:
    """The latest row of one document, as the store should hold it."""

    key: int
    event: datetime  # naive UTC
    title: str | None
    lang: str | None
    vector: list[float] | None


def distance(metric: str, a: np.ndarray, b: np.ndarray) -> float | None:
    """The rule of docs/vector-search.md in float64 (None: never returned, a zero vector with cosine)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if metric == "cosine":
        na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
        if na == 0 or nb == 0:
            return None
        return float(1 - a64 @ b64 / (na * nb))
    if metric == "l2":
        return float(np.linalg.norm(a64 - b64))
    return float(-(a64 @ b64))


def reference(docs: dict[int, Doc], query: list[float], metric: str, top_k: int,
              where: dict[str, Any] | None = None, not_before: datetime | None = None
              ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The documents a search must return, and every one it may: (key, distance), by distance then key."""
    q = np.asarray(query, dtype=np.float32)
    found = []
    for doc in docs.values():
        if doc.vector is None:
            continue
        if not_before is not None and doc.event < not_before.astimezone(timezone.utc).replace(tzinfo=None):
            continue
        if where and any(getattr(doc, k) != v for k, v in where.items()):
            continue
        d = distance(metric, np.asarray(doc.vector, dtype=np.float32), q)
        if d is not None:
            found.append((doc.key, d))
    found.sort(key=lambda kd: (kd[1], kd[0]))
    return found[:top_k], found


def tolerance(value: float) -> float:
    return 1e-5 + 1e-5 * abs(value)


def assert_matches_reference(hits: list[Any], docs: dict[int, Doc], query: list[float], metric: str, top_k: int,
                             where: dict[str, Any] | None = None, not_before: datetime | None = None,
                             context: str = "") -> None:
    """``hits`` (SearchHits or (key, distance) pairs) are what the reference allows.

    The store computes distances in float32 (sqlite-vec), so two documents whose exact
    distances are equal may differ in the last bits: the check takes the store's own order as
    (its distance, key) exactly, each distance within a tolerance of the exact one, and the
    documents left out no nearer than the last one returned (up to that tolerance).
    """
    top, eligible = reference(docs, query, metric, top_k, where, not_before)
    exact = dict(eligible)
    pairs = [(h.key[0], h.distance) if hasattr(h, "key") else h for h in hits]
    keys = [k for k, _ in pairs]
    assert len(pairs) == len(top), f"{context}: {len(pairs)} hits, expected {len(top)}: {pairs} vs {top}"
    assert len(set(keys)) == len(keys), f"{context}: a document twice: {keys}"
    for key, d in pairs:
        assert key in exact, f"{context}: document {key} must not be returned (expired, filtered, NULL or zero)"
        assert abs(d - exact[key]) <= tolerance(exact[key]), f"{context}: document {key}: {d} != {exact[key]}"
    assert pairs == sorted(pairs, key=lambda kd: (kd[1], kd[0])), f"{context}: not by (distance, key): {pairs}"
    if pairs:
        worst = max(exact[k] for k in keys)
        for key, d in eligible:
            if key not in keys:
                assert d >= worst - tolerance(worst), f"{context}: document {key} ({d}) is nearer than {worst}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def doc_rows(docs: dict[int, Doc]) -> list[dict[str, Any]]:
    return [dict(doc_id=d.key, event_timestamp=d.event, title=d.title, lang=d.lang, embedding=d.vector)
            for d in docs.values()]


def days_ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)
