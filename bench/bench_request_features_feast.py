"""Feast 0.67's on-demand feature view (python mode) on the features of bench_request_features.py,
for the table in docs/benchmarks.md. Runs in a venv with ``feast==0.67.0`` (not featurehouse's):

    python -m venv /tmp/feast && /tmp/feast/bin/pip install feast==0.67.0
    /tmp/feast/bin/python bench/bench_request_features_feast.py [--calls 2000]

A SQLite online store with 100 drivers; p50 of get_online_features of the plain features and of
the same read with five on-demand features (the same expressions, written in Python).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def p50(function, calls: int) -> float:
    """The median wall time of ``function()`` in microseconds."""
    for _ in range(min(50, calls)):
        function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RequestSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.repo_config import RepoConfig
    from feast.types import Bool, Float64, Int64, String

    root = Path(tempfile.mkdtemp())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = [
        {
            "driver_id": d,
            "event_timestamp": now - timedelta(hours=1),
            "created": now - timedelta(hours=1),
            "conv_rate": (d % 10) / 10,
            "trips": d * 3,
            "city": "Berlin" if d % 2 else "Paris",
            "active": bool(d % 3),
        }
        for d in range(1, 101)
    ]
    pd.DataFrame(rows).to_parquet(root / "stats.parquet")
    driver = Entity(name="driver", join_keys=["driver_id"])
    source = FileSource(
        path=str(root / "stats.parquet"), timestamp_field="event_timestamp", created_timestamp_column="created"
    )
    stats = FeatureView(
        name="stats",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[
            Field(name="conv_rate", dtype=Float64),
            Field(name="trips", dtype=Int64),
            Field(name="city", dtype=String),
            Field(name="active", dtype=Bool),
        ],
        source=source,
    )
    request = RequestSource(
        name="ride_request",
        schema=[Field(name="fare", dtype=Float64), Field(name="passengers", dtype=Int64), Field(name="rcity", dtype=String)],
    )

    @on_demand_feature_view(
        sources=[stats, request],
        schema=[
            Field(name="fare_per_trip", dtype=Float64),
            Field(name="weighted", dtype=Float64),
            Field(name="same_city", dtype=Bool),
            Field(name="bucket", dtype=Int64),
            Field(name="busy", dtype=Bool),
        ],
        mode="python",
    )
    def ride(inputs: dict) -> dict:
        out: dict = {"fare_per_trip": [], "weighted": [], "same_city": [], "bucket": [], "busy": []}
        for fare, trips, conv, passengers, rcity, city, active in zip(
            inputs["fare"], inputs["trips"], inputs["conv_rate"], inputs["passengers"], inputs["rcity"],
            inputs["city"], inputs["active"],
        ):
            out["fare_per_trip"].append(None if fare is None or not trips else fare / trips)
            out["weighted"].append((conv or 0) * passengers + 0.5)
            out["same_city"].append(rcity == city)
            out["bucket"].append(passengers % 3 if passengers > 2 else -1)
            out["busy"].append(bool(active and trips is not None and 10 <= trips <= 1000))
        return out

    config = RepoConfig(
        project="bench",
        registry=str(root / "registry.db"),
        provider="local",
        online_store={"type": "sqlite", "path": str(root / "online.db")},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    store.apply([driver, stats, request, ride])
    store.materialize(now - timedelta(days=2), now)
    plain_refs = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
    ride_refs = [f"ride:{n}" for n in ("fare_per_trip", "weighted", "same_city", "bucket", "busy")]
    print("| batch | Feast plain read p50 (µs) | Feast read + 5 on-demand features p50 | added |")
    print("|---|---|---|---|")
    for batch in (1, 100):
        entity_rows = [{"driver_id": 1 + i % 100} for i in range(batch)]
        with_request = [{**r, "fare": 12.5, "passengers": 3, "rcity": "Berlin"} for r in entity_rows]
        plain = p50(lambda: store.get_online_features(features=plain_refs, entity_rows=entity_rows), args.calls)
        full = p50(lambda: store.get_online_features(features=ride_refs, entity_rows=with_request), args.calls)
        print(f"| {batch} | {plain:.0f} | {full:.0f} | {full - plain:.0f} µs ({full / plain:.2f}×) |")


if __name__ == "__main__":
    main()
