"""``featurehouse check``: the skew audit between the online store and the training data.

For a sample of each synced view's entities, read the online store as of the view's
last sync time (ttl applied at that instant) and run ``get_historical_features`` for the
same entities; any value that differs is listed.

- Plain views are compared at the sync time, exactly: the store must hold what the
  point-in-time join gives then (rows newer than the last ``dbt build`` show as
  differences: that is staleness, and the audit reports it).
- Aggregation views are compared at the snapshot's as-of time, which is each online
  row's event timestamp (entities the store does not hold: the as-of time of the rows
  it does hold), since an aggregate is only defined at the instant it was computed.
  Floats are equal within a relative 1e-9: the snapshot and a training set sum the same
  events in a different order, which can change the last bits.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.spec.model import EVENT_TIMESTAMP
from featurehouse.sync.layout import normalise

if TYPE_CHECKING:
    from featurehouse.sdk.store import FeatureStore

RELATIVE_TOLERANCE = 1e-9  # aggregation views only


@dataclass
class AuditResult:
    """What ``featurehouse check`` found: one summary per view, then each difference."""

    summaries: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summaries, then the differences, as printed."""
        return [*self.summaries, *self.differences]


def audit(store: FeatureStore, views: list[str] | None = None, sample: int = 100) -> AuditResult:
    """Compare a sample of each view's online rows with the warehouse snapshot they were synced from."""
    import pyarrow as pa

    from featurehouse.online.reader import OnlineReader
    from featurehouse.sync import online_layouts, open_backend, read_snapshot_table, stale_models

    result = AuditResult()
    layouts = online_layouts(store.repo, views)
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    states = {}
    if backend.exists():  # an embedded store nobody synced: connecting would create its file
        try:
            backend.connect()
            states = {s.view: s for s in backend.states()}
        finally:
            backend.close()
    reader = OnlineReader(store)
    from featurehouse.warehouse import connect  # the layer below, not the SDK's private _warehouse()

    warehouse = connect(store.target, store.repo_path, models_dir=store.repo.root / store.repo.config.models_dir)
    try:
        # a stale table is not skew (the training data reads it too), but it explains old values
        result.summaries.extend(f"stale build: {message}" for message in stale_models(warehouse, layouts))
        for layout in layouts:
            state = states.get(layout.name)
            if state is None:
                result.differences.append(f"{layout.name}: never synced; run 'featurehouse sync'")
                continue
            aggregation = store.repo.feature_views[layout.name].is_aggregation
            snapshot = read_snapshot_table(warehouse, layout)
            keys = (
                normalise(snapshot, layout)
                .select([*layout.join_keys, EVENT_TIMESTAMP])
                .sort_by([(k, "ascending") for k in layout.join_keys])
            )
            if keys.num_rows > sample:  # evenly spread over the key range, the same entities every run
                step = keys.num_rows / sample
                keys = keys.take(pa.array([int(i * step) for i in range(sample)]))
            if keys.num_rows == 0:
                result.summaries.append(f"{layout.name}: the snapshot is empty, nothing to compare")
                continue
            refs = [f"{layout.name}:{f}" for f in layout.features]
            synced_at = state.synced_at
            columns = {k: keys.column(k).to_pylist() for k in layout.join_keys}
            online = reader.read(refs, columns, full_feature_names=True, now=synced_at)
            if aggregation:
                times, as_of = _as_of_times(online.event_timestamps[f"{layout.name}__{layout.features[0]}"], synced_at)
                when = f"at the snapshot's as-of time {_utc_text(as_of)} UTC (synced at {_utc_text(synced_at)} UTC)"
                ttl = store.repo.feature_views[layout.name].ttl
                if ttl and as_of < synced_at - timedelta(seconds=ttl):
                    # a stale snapshot is not skew: compare as of its own time, and say it is stale
                    online = reader.read(refs, columns, full_feature_names=True, now=as_of)
                    when += "; the snapshot was already older than the ttl when synced, so reads give OUTSIDE_MAX_AGE"
            else:
                times = [synced_at] * keys.num_rows
                when = f"as of the sync at {_utc_text(synced_at)} UTC"
            found = _store_against_snapshot(layout, keys, columns, online, result)
            keys = keys.drop_columns([EVENT_TIMESTAMP])
            spine = keys.append_column(
                EVENT_TIMESTAMP,
                pa.array([t.astimezone(timezone.utc).replace(tzinfo=None) for t in times], type=pa.timestamp("us")),
            )
            offline = store.get_historical_features(spine, refs, full_feature_names=True).to_arrow()
            same = _close if aggregation else _same
            for i in range(keys.num_rows):
                for feature in layout.features:
                    name = f"{layout.name}__{feature}"
                    online_value = online.values[name][i]
                    offline_value = offline.column(name)[i].as_py()
                    if not same(online_value, offline_value):
                        found += 1
                        entity = ", ".join(f"{k}={columns[k][i]!r}" for k in layout.join_keys)
                        result.differences.append(
                            f"{layout.name} [{entity}] {feature}: online {online_value!r} "
                            f"({online.statuses[name][i]}), training {offline_value!r} at {_utc_text(times[i])}"
                        )
            result.summaries.append(f"{layout.name}: {keys.num_rows} entities compared {when}, {found} difference(s)")
            if layout.vector is not None:  # searches too: online (exact, and the index's recall) vs offline
                from featurehouse.online.check_vectors import audit_search

                summary, problems = audit_search(store, layout, normalise(snapshot, layout), synced_at, sample)
                result.summaries.append(summary)
                result.differences.extend(problems)
        if store.repo.request_views and not views:  # request views: the same sampled request data both ways
            from featurehouse.online.check_requests import audit_request_views

            summaries, differences = audit_request_views(store, reader, states, warehouse, sample)
            result.summaries.extend(summaries)
            result.differences.extend(differences)
    finally:
        warehouse.close()
        reader.close()
    return result


def _store_against_snapshot(
    layout: Any, keys: Any, columns: dict[str, list[Any]], online: Any, result: AuditResult
) -> int:
    """List the sampled entities whose stored row is not the warehouse snapshot's; return how many.

    The store can hold a newer row than the snapshot: a sync never writes an older row over a
    newer one (after a snapshot built as of an earlier time, say), so the comparison with the
    training data alone would not show it.
    """
    snapshot_times = keys.column(EVENT_TIMESTAMP).to_pylist()
    stored_times = online.event_timestamps[f"{layout.name}__{layout.features[0]}"] if layout.features else []
    found = 0
    for i, (stored, built) in enumerate(zip(stored_times, snapshot_times)):
        built = built.replace(tzinfo=timezone.utc) if built is not None else None
        if stored is None or built is None or stored == built:
            continue
        found += 1
        entity = ", ".join(f"{k}={columns[k][i]!r}" for k in layout.join_keys)
        if stored > built:
            result.differences.append(
                f"{layout.name} [{entity}]: the store holds a newer row ({_utc_text(stored)} UTC) than the warehouse "
                f"snapshot ({_utc_text(built)} UTC), which a sync does not write over; run 'featurehouse sync "
                f"--full-refresh --views {layout.name}' to replace it with the snapshot"
            )
        else:
            result.differences.append(
                f"{layout.name} [{entity}]: the warehouse snapshot has a newer row ({_utc_text(built)} UTC) than the "
                f"store ({_utc_text(stored)} UTC); run 'featurehouse sync'"
            )
    return found


def _as_of_times(stamps: list[datetime | None], synced_at: datetime) -> tuple[list[datetime], datetime]:
    """Each entity's comparison time in an aggregation view, and the snapshot's as-of time.

    Every row of one snapshot carries its as-of time; an entity the store does not hold
    is compared at the as-of time most rows carry (the sync time if the store holds none).
    """
    held = Counter(t for t in stamps if t is not None)
    as_of = held.most_common(1)[0][0] if held else synced_at
    return [t if t is not None else as_of for t in stamps], as_of


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return a == b


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (a != a and b != b) or math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE)
    return _same(a, b)
