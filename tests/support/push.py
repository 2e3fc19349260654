"""Test support for pushes: the online test repo with a push source, fresh stores of each kind, rows."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from support import online as so

PUSH_SPEC = """\
sources:
  - name: stats_push
    push: {batch_source: stats_source}
    description: Fresh driver statistics pushed by the trips service.
"""
FEATURES = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]


def build_push_repo(root: Path, drivers: range, now: datetime) -> Path:
    """The online test repo (support.online) with the push source stats_push, built by dbt."""
    so.write_repo(root, {**so.SPECS, "push.yml": PUSH_SPEC}, online_store=so.sqlite_store())
    so.write_data(root, so.stats_rows(drivers, now), so.pairs_rows(drivers, now))
    so.rebuild(root)
    return root


def fresh_store(root: Path, kind: str, postgres_url: str | None, redis_url: str | None, tag: str) -> tuple[Any, str]:
    """A FeatureStore of ``root`` on a new, empty store of ``kind``; (store, the name to drop)."""
    from featurehouse.sdk.store import FeatureStore

    name = so.unique(f"h4{tag}")
    config = {
        "sqlite": lambda: so.sqlite_store(f"data/{name}.db"),
        "postgres": lambda: so.postgres_store(str(postgres_url), name),
        "redis": lambda: so.redis_store(str(redis_url), name),
    }[kind]()
    so.set_store(root, config)
    return FeatureStore(root), name


def drop(kind: str, name: str, postgres_url: str | None, redis_url: str | None) -> None:
    """Drop what ``fresh_store`` made (the SQLite file goes with the test's folder)."""
    if kind == "postgres":
        so.drop_store(kind, str(postgres_url), name)
    elif kind == "redis":
        so.drop_store(kind, str(redis_url), name)


def stats_push_rows(
    drivers: list[int], at: datetime, conv: float = 0.5, trips: int | None = None
) -> dict[str, list[Any]]:
    """Pushed rows for ``drivers``, all at ``at``; trips = driver id (or ``trips``), so a read shows whose row it is."""
    return {
        "driver_id": list(drivers),
        "event_timestamp": [at] * len(drivers),
        "conv_rate": [conv] * len(drivers),
        "trips": [d if trips is None else trips for d in drivers],
        "city": ["pushed"] * len(drivers),
        "active": [True] * len(drivers),
    }


def bulk_rows(count: int, at: datetime, conv: float) -> pa.Table:
    """``count`` pushed rows as an Arrow table (drivers 1..count, trips = driver id)."""
    ids = pa.array(range(1, count + 1), pa.int64())
    return pa.table(
        {
            "driver_id": ids,
            "event_timestamp": pa.array([at] * count, pa.timestamp("us")),
            "conv_rate": pa.array([conv] * count, pa.float32()),
            "trips": ids,
            "city": pa.array(["bulk"] * count),
            "active": pa.array([True] * count),
        }
    )


def online(store: Any, drivers: list[int]) -> dict[str, list[Any]]:
    """What get_online_features answers for ``drivers``."""
    return dict(store.get_online_features(FEATURES, [{"driver_id": d} for d in drivers]).to_dict())


CHILD = """\
import sys, time
sys.path.insert(0, {tests!r})
from datetime import datetime
from featurehouse.sdk.store import FeatureStore
from support.push import bulk_rows
store = FeatureStore({root!r})
what = sys.argv[1]
print("ready", flush=True)
if what == "push":
    store.push("stats_push", bulk_rows(int(sys.argv[2]), datetime.fromisoformat(sys.argv[3]), float(sys.argv[4])))
else:
    from featurehouse.sync import sync
    sync(store, wait=30)
print("done", flush=True)
"""


def start_child(root: Path, *args: str) -> subprocess.Popen[str]:
    """A process that pushes (``push COUNT AT CONV``) or syncs (``sync``) with the repo's current store."""
    tests = str(Path(__file__).resolve().parent.parent)
    code = CHILD.format(tests=tests, root=str(root))
    env = {**os.environ, "PYTHONPATH": tests}
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line
    return process


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
