"""``featurehouse check``: the skew audit between the online store and the training data.

For a sample of each synced view's entities, read the online store as of the view's
last sync time (ttl applied at that instant) and run ``get_historical_features`` for the
same entities at that instant; any value that differs is listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurehouse.specs import EVENT_TIMESTAMP

if TYPE_CHECKING:
    from featurehouse.store import FeatureStore


@dataclass
class AuditResult:
    summaries: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.summaries, *self.differences]


def audit(store: "FeatureStore", views: list[str] | None = None, sample: int = 100) -> AuditResult:
    import pyarrow as pa

    from featurehouse.online import OnlineReader
    from featurehouse.sync import online_layouts, open_backend, read_snapshot_table

    result = AuditResult()
    layouts = online_layouts(store.repo, views)
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    try:
        backend.connect()
        states = {s.view: s for s in backend.states()}
    finally:
        backend.close()
    reader = OnlineReader(store)
    warehouse = store._warehouse()
    try:
        for layout in layouts:
            state = states.get(layout.name)
            if state is None:
                result.differences.append(f"{layout.name}: never synced; run 'featurehouse sync'")
                continue
            snapshot = read_snapshot_table(warehouse, layout)
            keys = snapshot.select(list(layout.join_keys)).sort_by([(k, "ascending") for k in layout.join_keys])
            if keys.num_rows > sample:  # evenly spread over the key range, the same entities every run
                step = keys.num_rows / sample
                keys = keys.take(pa.array([int(i * step) for i in range(sample)]))
            refs = [f"{layout.name}:{f}" for f in layout.features]
            at = state.synced_at
            columns = {k: keys.column(k).to_pylist() for k in layout.join_keys}
            online = reader.read(refs, columns, full_feature_names=True, now=at) if keys.num_rows else None
            spine = keys.append_column(
                EVENT_TIMESTAMP, pa.array([at.replace(tzinfo=None)] * keys.num_rows, type=pa.timestamp("us")))
            offline = (store.get_historical_features(spine, refs, full_feature_names=True).to_arrow()
                       if keys.num_rows else None)
            found = 0
            for i in range(keys.num_rows):
                for feature in layout.features:
                    name = f"{layout.name}__{feature}"
                    online_value = online.values[name][i] if online else None
                    offline_value = offline.column(name)[i].as_py() if offline is not None else None
                    if not _same(online_value, offline_value):
                        found += 1
                        entity = ", ".join(f"{k}={columns[k][i]!r}" for k in layout.join_keys)
                        result.differences.append(
                            f"{layout.name} [{entity}] {feature}: online {online_value!r} "
                            f"({online.statuses[name][i] if online else 'NOT_FOUND'}), training {offline_value!r}")
            result.summaries.append(
                f"{layout.name}: {keys.num_rows} entities compared as of the sync at "
                f"{at.strftime('%Y-%m-%d %H:%M:%S')} UTC, {found} difference(s)")
    finally:
        warehouse.close()
        reader.close()
    return result


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return a == b
