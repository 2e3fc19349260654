"""What an online vector search asks a store for, and what the store answers.

Shared by every store that implements ``Backend.search`` (SQLite through sqlite-vec,
Postgres through pgvector). The rules every store keeps (docs/vector-search.md):

- distance: cosine ``1 - a.b / (|a||b|)``, l2 the Euclidean distance (not squared),
  inner_product ``-a.b`` (smaller is better, as pgvector's ``<#>``);
- order: distance ascending, then the join-key values ascending;
- a NULL document vector, and with cosine a zero document vector, is never returned;
- a document older than ``not_before`` (the ttl cut-off) is never returned, and the
  filter runs in the store's query so ``top_k`` is filled with live documents;
- ``where`` pairs are equality filters on scalar features of the same view, ANDed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError, excerpt

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from featurehouse.sync.layout import ViewLayout

METRICS = ("cosine", "l2", "inner_product")
MAX_TOP_K = 1000
MAX_DIMENSIONS = 16000


@dataclass(frozen=True)
class SearchRequest:
    """One top-k search of one feature view's vector feature, already validated.

    ``query`` is a float32 1-D array of the index's dimensions, finite (and not all zero
    for cosine); ``features`` are the features whose values each hit carries, in order;
    ``where`` holds (feature, value) equality filters; ``not_before`` is the ttl cut-off
    (UTC) or None; ``exact`` asks for an exact (not approximate-index) search.
    """

    vector_feature: str
    features: tuple[str, ...]
    query: np.ndarray
    top_k: int
    metric: str
    where: tuple[tuple[str, Any], ...] = ()
    not_before: datetime | None = None
    exact: bool = False


@dataclass(frozen=True)
class SearchHit:
    """One document a search found: its join-key values, feature values, distance and event time.

    ``values`` are decoded as reads decode them, in ``SearchRequest.features`` order;
    ``event_timestamp`` is UTC.
    """

    key: tuple[Any, ...]
    values: tuple[Any, ...]
    distance: float
    event_timestamp: datetime


class NoVectorSearchError(OnlineStoreError):
    """The configured online store has no vector search (a request the server answers with 400)."""


def check_vectors(layout: ViewLayout, table: pa.Table) -> None:
    """Refuse rows whose vector has the wrong length, a null element, NaN or infinity, naming view and key.

    Every store runs it before its transaction, so a view is synced whole or not at all.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if layout.vector is None or table.num_rows == 0:
        return
    name, dimensions, _ = layout.vector
    column = table.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    wrong = np.flatnonzero(present & (lengths != dimensions))
    if len(wrong):
        row = int(wrong[0])
        raise OnlineStoreError(
            f"feature view '{layout.name}': the vector feature '{name}' of key {_key(layout, table, row)} has "
            f"{int(lengths[row])} dimensions, but its spec declares vector.dimensions {dimensions}; fix the source "
            "rows (the vector_dimensions dbt test names them all) and sync again"
        )
    values = column.flatten()
    if values.null_count:
        bad_rows = _rows_of(column, np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False)))
        raise OnlineStoreError(
            f"feature view '{layout.name}': the vector feature '{name}' of key {_key(layout, table, bad_rows)} "
            "has a null element; a vector must hold numbers only (the view was not synced)"
        )
    numbers = values.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        row = _rows_of(column, bad[:1])
        raise OnlineStoreError(
            f"feature view '{layout.name}': the vector feature '{name}' of key {_key(layout, table, row)} holds "
            f"{float(numbers[bad[0]])!r}; vectors must be finite (no NaN or infinity), so the view was not synced"
        )


def _rows_of(column: pa.ListArray, positions: Any) -> int:
    """The row of ``column`` that holds the flattened (null rows skipped) value at ``positions[0]``."""
    import numpy as np
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    return int(np.searchsorted(np.cumsum(lengths), int(positions[0]), side="right"))


def _key(layout: ViewLayout, table: pa.Table, row: int) -> str:
    values = [table.column(k)[row].as_py() for k in layout.join_keys]
    return "(" + ", ".join(f"{k}={excerpt(v)}" for k, v in zip(layout.join_keys, values)) + ")"
