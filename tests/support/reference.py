"""A brute-force point-in-time join in plain Python: the semantics the macros must implement.

It follows docs/point-in-time.md and the header of
macros/point_in_time_join.sql, written for clarity rather than speed (every spine row scans
every feature row). For a spine row with join keys K and time t, and a view with ttl T:

- candidates: feature rows with the same K (a NULL key matches nothing) and
  ``event_timestamp <= t``; with T > 0 also ``event_timestamp >= t - T``; with
  ``filter_by_created`` also ``created_timestamp <= t``, a NULL created time counting as
  "always existed" (the same "NULL is oldest" reading as in the tie-break);
- winner: greatest event time, then greatest created time (NULL is oldest), then the
  greatest tuple of ALL the view's features in schema order (not only the requested
  ones, so a value never depends on what else was asked for), NULL greater than any
  value, strings compared byte-wise (UTF-8);
- no candidate, or a NULL spine time: every feature of the view is NULL;
- every spine row comes out once, in order, with its own columns unchanged, followed by
  the features of each view (prefixed ``view__`` with ``full_feature_names``).

Timestamps inside feature rows are naive UTC ``datetime``s, as the compiled fv_ models
store them; spine times may be naive (UTC) or tz-aware.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVENT = "event_timestamp"
CREATED = "created_timestamp"


@dataclass(frozen=True)
class View:
    """One feature view as the join sees it.

    ``features`` are the requested ones, in output order; ``schema`` is every feature of
    the view in schema order (the full-tie rule compares them all, whatever is requested;
    defaults to ``features``). ``rows`` are dicts with join keys, times and all features.
    """

    name: str
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl_seconds: int = 0
    filter_by_created: bool = False
    rows: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    schema: tuple[str, ...] = ()


def to_utc_naive(value: dt.datetime | None) -> dt.datetime | None:
    """The instant ``value`` names as a naive UTC datetime (naive input is UTC already)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _null_greatest(value: Any) -> tuple[int, Any]:
    """A sort key in which NULL is greater than any value and strings compare byte-wise."""
    if value is None:
        return (1, 0)
    if isinstance(value, str):
        value = value.encode("utf-8")
    return (0, value)


def _null_oldest(value: dt.datetime | None) -> tuple[int, Any]:
    return (0, 0) if value is None else (1, value)


def winner(view: View, keys: tuple[Any, ...], t: dt.datetime | None) -> Mapping[str, Any] | None:
    """The feature row the spine row (keys, t) gets from ``view``, or None."""
    t = to_utc_naive(t)
    if t is None or any(k is None for k in keys):
        return None
    earliest = t - dt.timedelta(seconds=view.ttl_seconds) if view.ttl_seconds > 0 else None
    best = None
    best_rank = None
    for row in view.rows:
        event = row[EVENT]
        if event is None or tuple(row[k] for k in view.join_keys) != keys:
            continue
        if event > t or (earliest is not None and event < earliest):
            continue
        created = row.get(CREATED)
        if view.filter_by_created and created is not None and created > t:
            continue
        rank = (event, _null_oldest(created), tuple(_null_greatest(row[f]) for f in view.schema or view.features))
        if best_rank is None or rank > best_rank:
            best, best_rank = row, rank
    return best


def point_in_time_join(
    spine: Iterable[Mapping[str, Any]],
    views: Sequence[View],
    timestamp_column: str = EVENT,
    full_feature_names: bool = False,
) -> list[dict[str, Any]]:
    """Every spine row, in order, with its columns and the point-in-time features of each view."""
    result = []
    for spine_row in spine:
        out = dict(spine_row)
        for view in views:
            keys = tuple(spine_row[k] for k in view.join_keys)
            found = winner(view, keys, spine_row[timestamp_column])
            prefix = f"{view.name}__" if full_feature_names else ""
            for feature in view.features:
                out[prefix + feature] = None if found is None else found[feature]
        result.append(out)
    return result
