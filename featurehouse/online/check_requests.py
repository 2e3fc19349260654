"""``featurehouse check`` for request views: the same sampled request data online and offline.

For each request view, a sample of the entities of the views its expressions read is read
online as of their last sync, with generated request values (NULLs, zeros, negative and large
numbers, strings, timestamps around the sync); ``get_historical_features`` gets the same
entities at the same instant with the same values as spine columns. Every value must be equal.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.spec.model import EVENT_TIMESTAMP

if TYPE_CHECKING:
    from featurehouse.online.reader import OnlineReader
    from featurehouse.sdk.store import FeatureStore


def sample_value(dtype: str, rng: random.Random, around: datetime) -> Any:
    """One request value of ``dtype``: NULL, zero and edge values often, else random."""
    if rng.random() < 0.1:
        return None
    if dtype in ("int32", "int64"):
        return rng.choice([0, 1, -1, 2**31 - 1, rng.randint(-1000, 1000)])
    if dtype in ("float32", "float64"):
        return rng.choice([0.0, -0.0, 0.5, -2.5, 1e12, rng.uniform(-1e3, 1e3)])
    if dtype == "string":
        return rng.choice(["", "a", "é👍🏽", "Berlin", str(rng.randint(0, 99))])
    if dtype == "bool":
        return rng.random() < 0.5
    return (around + timedelta(seconds=rng.randint(-86400, 86400))).astimezone(timezone.utc).replace(tzinfo=None)


def audit_request_views(
    store: FeatureStore, reader: OnlineReader, states: dict[str, Any], warehouse: Any, sample: int
) -> tuple[list[str], list[str]]:
    """(summaries, differences) of every request view whose feature views are synced."""
    import pyarrow as pa

    from featurehouse.spec.request_views import compiled
    from featurehouse.sync import online_layouts, read_snapshot_table
    from featurehouse.sync.layout import normalise

    repo = store.repo
    summaries: list[str] = []
    differences: list[str] = []
    for name in sorted(repo.request_views):
        view = repo.request_views[name]
        plan = compiled(repo, view)
        used = list(dict.fromkeys(v for v, _ in plan.refs))
        refs = [f"{name}:{f}" for f in view.feature_names]
        unsynced = [v for v in used if v not in states]
        if unsynced:
            summaries.append(f"{name}: not compared, feature view '{unsynced[0]}' was never synced")
            continue
        keys: list[str] = []
        for used_view in used:
            keys += [k for k in repo.join_keys(repo.feature_views[used_view]) if k not in keys]
        if len(used) > 1 and any(set(repo.join_keys(repo.feature_views[v])) != set(keys) for v in used):
            summaries.append(f"{name}: not compared, the views it reads have different join keys")
            continue
        synced_at = min((states[v].synced_at for v in used), default=datetime.now(timezone.utc))
        rng = random.Random(name)
        if used:
            layout = online_layouts(repo, [used[0]])[0]
            table = normalise(read_snapshot_table(warehouse, layout), layout).select(keys)
            table = table.sort_by([(k, "ascending") for k in keys])
            if table.num_rows > sample:
                step = table.num_rows / sample
                table = table.take(pa.array([int(i * step) for i in range(sample)]))
            columns = {k: table.column(k).to_pylist() for k in keys}
            count = table.num_rows
        else:
            columns, count = {}, sample
        if count == 0:
            summaries.append(f"{name}: the snapshot of '{used[0]}' is empty, nothing to compare")
            continue
        data = {f: [sample_value(d, rng, synced_at) for _ in range(count)] for f, d in plan.fields.items()}
        online = reader.read(refs, columns or [{}] * count, full_feature_names=True, now=synced_at, request_data=data)
        moment = synced_at.astimezone(timezone.utc).replace(tzinfo=None)
        spine = pa.table(
            {
                **{k: pa.array(v) for k, v in columns.items()},
                EVENT_TIMESTAMP: pa.array([moment] * count, pa.timestamp("us")),
                **{f: pa.array(v, _arrow(plan.fields[f])) for f, v in data.items()},
            }
        )
        offline = store.get_historical_features(spine, refs, full_feature_names=True).to_arrow()
        found = 0
        for feature in view.feature_names:
            column = f"{name}__{feature}"
            for i in range(count):
                left, right = online.values[column][i], offline.column(column)[i].as_py()
                if isinstance(right, datetime) and right.tzinfo is None:
                    right = right.replace(tzinfo=timezone.utc)
                if not (left == right or (left != left and right != right)):
                    found += 1
                    entity = ", ".join(f"{k}={columns[k][i]!r}" for k in keys)
                    request = ", ".join(f"{f}={v[i]!r}" for f, v in data.items())
                    differences.append(
                        f"{name} [{entity}] {feature} with {request}: online {left!r}, training {right!r}"
                    )
        summaries.append(
            f"{name}: {count} entities compared with sampled request data as of the sync, {found} difference(s)"
        )
    return summaries, differences


def _arrow(dtype: str) -> Any:
    import pyarrow as pa

    from featurehouse.spec.types import arrow_type

    return pa.timestamp("us") if dtype == "timestamp" else arrow_type(dtype)
