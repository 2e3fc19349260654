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

from featurehouse.errors import OnlineStoreError

if TYPE_CHECKING:
    import numpy as np

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
