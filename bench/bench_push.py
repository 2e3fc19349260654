"""Benchmark pushes: `store.push` of N rows into SQLite, Postgres and Redis, beside the store's own
conditional write of the same rows, and `POST /push` of one row beside `/get-online-features`.

The baseline of a push is the store module's conditional upsert (`Backend.push_rows`, the
SQL / Lua script `sync` uses) handed rows already typed as Arrow: what any conditional write
of those rows costs in that store. `store.push` adds the rest a user's call pays: checking a
DataFrame against the push source's schema, projecting it onto each view, one row per entity.
Every round pushes rows newer than the last, so every row is written. The HTTP rows are
sequential requests through the ASGI app in-process (no network), both endpoints in the
same run. Prints Markdown tables.

    .venv/bin/python bench/bench_push.py [--rows 100000] [--stores sqlite,postgres,redis] [--requests 2000]

Needs Postgres at FEATUREHOUSE_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test)
and Redis at FEATUREHOUSE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0); it writes
into a throwaway schema / key prefix and removes them afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("FEATUREHOUSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FEATUREHOUSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
sys.path.insert(0, str(ROOT / "tests"))

from support import online as so  # noqa: E402
from support.push import build_push_repo, bulk_rows, drop, fresh_store, stats_push_rows  # noqa: E402


def _best(times: list[float]) -> float:
    return min(times)


def bench_store(root: Path, kind: str, rows: int, rounds: int) -> tuple[float, float]:
    """(seconds of store.push, seconds of the store's conditional write), best of ``rounds``."""
    from featurehouse.online.push import _view_rows  # the projection the push makes, reused for the baseline
    from featurehouse.sync import open_backend
    from featurehouse.sync.layout import ViewLayout, utc_now

    store, name = fresh_store(root, kind, POSTGRES_URL, REDIS_URL, tag="bench")
    try:
        now = so.utc_hour()
        layout = ViewLayout.of(store.repo, store.repo.feature_views["stats"])
        backend = open_backend(store.repo.config.online_store, store.repo_path)
        backend.connect()
        store.push("stats_push", bulk_rows(rows, now - timedelta(hours=3), 0.1).to_pandas())  # warm: tables exist
        pushed, raw = [], []
        for i in range(rounds):
            frame = bulk_rows(rows, now - timedelta(hours=2, minutes=-2 * i), 0.2).to_pandas()
            start = time.perf_counter()
            result = store.push("stats_push", frame)
            pushed.append(time.perf_counter() - start)
            assert result.online["stats"] == rows, result
            typed = bulk_rows(rows, now - timedelta(hours=2, minutes=-2 * i - 1), 0.3)
            typed = typed.append_column("created", pa.array([now.replace(tzinfo=None)] * rows, pa.timestamp("us")))
            table = _view_rows(store, layout, typed, {"event": "event_timestamp", "created": "created"})
            start = time.perf_counter()
            written = backend.push_rows(layout, table, utc_now())
            raw.append(time.perf_counter() - start)
            assert written == rows, written
        backend.close()
        return _best(pushed), _best(raw)
    finally:
        drop(kind, name, POSTGRES_URL, REDIS_URL)


def bench_http(root: Path, requests: int) -> list[tuple[str, float, float, float]]:
    """(endpoint, requests/s, p50 ms, p99 ms) for one-row pushes and one-entity reads, sequential."""
    import json

    from fastapi.testclient import TestClient

    from featurehouse.server import create_app
    from featurehouse.sync import sync

    store, _ = fresh_store(root, "sqlite", None, None, tag="http")
    sync(store)
    now = so.utc_hour()
    out = []
    with TestClient(create_app(root)) as client:
        bodies = []
        for i in range(requests):
            df = stats_push_rows([1 + i % 10], now + timedelta(seconds=i))
            df["event_timestamp"] = [t.isoformat() for t in df["event_timestamp"]]
            bodies.append(json.dumps({"push_source_name": "stats_push", "df": df}).encode())
        read = json.dumps({"features": ["stats:trips"], "entities": {"driver_id": [1]}}).encode()
        for endpoint, payloads in (("/push", bodies), ("/get-online-features", [read] * requests)):
            latencies = []
            started = time.perf_counter()
            for body in payloads:
                t = time.perf_counter()
                answer = client.post(endpoint, content=body, headers={"content-type": "application/json"})
                latencies.append(time.perf_counter() - t)
                assert answer.status_code == 200, answer.text
            total = time.perf_counter() - started
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            out.append((endpoint, requests / total, statistics.median(latencies) * 1000, p99 * 1000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fh_bench_push_") as folder:
        root = build_push_repo(Path(folder) / "repo", range(1, 11), so.utc_hour())
        print(f"| store | push {args.rows:,} rows (s) | conditional write (s) | ratio |")
        print("| --- | --- | --- | --- |")
        for kind in args.stores.split(","):
            pushed, raw = bench_store(root, kind, args.rows, args.rounds)
            print(f"| {kind} | {pushed:.2f} | {raw:.2f} | {pushed / raw:.2f}x |")
        print()
        print("| endpoint (1 row / 1 entity, sequential, in-process) | requests/s | p50 ms | p99 ms |")
        print("| --- | --- | --- | --- |")
        for endpoint, rate, p50, p99 in bench_http(root, args.requests):
            print(f"| {endpoint} | {rate:,.0f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
