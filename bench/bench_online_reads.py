"""Benchmark online reads: featurehouse's OnlineReader against bare clients, in the same run.

Redis: the SDK (3 features, batch 1 and 100) beside a bare redis-py HMGET of the same key
and fields (batch 1) and a bare pipelined HMGET (batch 100). Postgres and SQLite: the
SDK at batch 1 beside a bare prepared SELECT of the same row. Prints a Markdown table.

    .venv/bin/python bench/bench_online_reads.py [--entities 10000] [--calls 5000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sync  # noqa: E402  (the same throwaway repo and data)

FEATURES = bench_sync.FEATURES
FIELDS = ["_ts", "conv_rate", "acc_rate", "avg_daily_trips"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def timed(call, calls: int) -> list[float]:
    for _ in range(min(200, calls)):  # warm up: plans, connections, prepared statements
        call()
    samples = []
    clock = time.perf_counter
    for _ in range(calls):
        started = clock()
        call()
        samples.append(clock() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=5_000)
    args = parser.parse_args()

    import psycopg
    import redis

    from featurehouse.online.reader import OnlineReader
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    now = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="fh-bench-reads-"))
    names = {kind: f"fhbench_{uuid.uuid4().hex[:8]}" for kind in ("sqlite", "postgres", "redis")}
    rng = random.Random(7)
    ids = [rng.randint(1, args.entities) for _ in range(args.calls + 200)]
    rows: list[tuple[str, float, float, str, str]] = []
    try:
        root = bench_sync.make_repo(folder, args.entities, now)
        bench_sync.build(root)
        readers = {}
        for kind in ("sqlite", "postgres", "redis"):
            bench_sync.configure(root, kind, names[kind])
            store = FeatureStore(root)
            sync(store)
            readers[kind] = OnlineReader(store)

        def cycle(values):
            iterator = itertools.cycle(values)
            return lambda: next(iterator)

        # ---- Redis ----------------------------------------------------------------------
        reader = readers["redis"]
        pick = cycle(ids)
        sdk1 = timed(lambda: reader.read(FEATURES, [{"driver_id": pick()}]), args.calls)
        client = redis.Redis.from_url(bench_sync.REDIS_URL)
        prefix = names["redis"]
        pick = cycle(ids)
        bare1 = timed(lambda: client.hmget(f"{prefix}:driver_stats:{pick()}", FIELDS), args.calls)
        batches = [[{"driver_id": rng.randint(1, args.entities)} for _ in range(100)] for _ in range(50)]
        pick_batch = cycle(batches)
        sdk100 = timed(lambda: reader.read(FEATURES, pick_batch()), max(args.calls // 10, 200))

        def bare_pipeline():
            pipe = client.pipeline(transaction=False)
            for row in pick_batch():
                pipe.hmget(f"{prefix}:driver_stats:{row['driver_id']}", FIELDS)
            return pipe.execute()

        bare100 = timed(bare_pipeline, max(args.calls // 10, 200))
        rows.append(("Redis, batch 1", *percentiles(sdk1), "redis-py HMGET", *percentiles(bare1)))
        rows.append(("Redis, batch 100", *percentiles(sdk100), "redis-py pipelined HMGET", *percentiles(bare100)))

        # ---- Postgres ---------------------------------------------------------------------
        reader = readers["postgres"]
        pick = cycle(ids)
        pg1 = timed(lambda: reader.read(FEATURES, [{"driver_id": pick()}]), args.calls)
        con = psycopg.connect(bench_sync.POSTGRES_URL, autocommit=True)
        sql = (f'select event_timestamp, conv_rate, acc_rate, avg_daily_trips from "{names["postgres"]}".driver_stats '
               "where driver_id = %s")
        pick = cycle(ids)
        bare_pg = timed(lambda: con.execute(sql, (pick(),), prepare=True).fetchall(), args.calls)
        rows.append(("Postgres, batch 1", *percentiles(pg1), "psycopg prepared SELECT", *percentiles(bare_pg)))

        # ---- SQLite -------------------------------------------------------------------------
        import sqlite3

        reader = readers["sqlite"]
        pick = cycle(ids)
        lite1 = timed(lambda: reader.read(FEATURES, [{"driver_id": pick()}]), args.calls)
        lite = sqlite3.connect(root / "data" / f"{names['sqlite']}.db")
        sql = "select event_timestamp, conv_rate, acc_rate, avg_daily_trips from driver_stats where driver_id = ?"
        pick = cycle(ids)
        bare_lite = timed(lambda: lite.execute(sql, (pick(),)).fetchall(), args.calls)
        rows.append(("SQLite, batch 1", *percentiles(lite1), "sqlite3 SELECT", *percentiles(bare_lite)))

        print(f"\n{args.entities:,} entities, 3 features, {args.calls:,} calls per row, loopback, one process "
              "(2-core machine)\n")
        print("| read | featurehouse p50 | p99 | baseline (same run) | baseline p50 | p99 | p50 ratio |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for name, p50, p99, base, b50, b99 in rows:
            print(f"| {name} | {p50:.3f} ms | {p99:.3f} ms | {base} | {b50:.3f} ms | {b99:.3f} ms | {p50 / b50:.2f}x |")
        for reader in readers.values():
            reader.close()
        client.close()
        con.close()
        lite.close()
    finally:
        for kind, name in names.items():
            bench_sync.cleanup(kind, name, folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
