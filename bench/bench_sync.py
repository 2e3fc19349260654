"""Benchmark `featurehouse sync`: 1M entities x 3 features into SQLite, Postgres and Redis.

For each store: a full sync (warehouse read, writes, state), the raw client doing the same
writes (sqlite3 executemany, psycopg COPY, redis-py pipelined HSET), and an incremental
sync after 1% of the entities got a newer row and `dbt build` ran again (the
``online_<view>`` model is incremental: sync fetches only the rows that build wrote),
beside the raw client upserting those same rows into its table (the floor of what any
incremental write costs in that store). Prints a Markdown table.

    .venv/bin/python bench/bench_sync.py [--entities 1000000] [--stores sqlite,postgres,redis]

Needs Postgres at FEATUREHOUSE_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test)
and Redis at FEATUREHOUSE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0); it writes
into a throwaway schema / key prefix and removes them afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("FEATUREHOUSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FEATUREHOUSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
sys.path.insert(0, str(ROOT / "tests"))  # support.driver_stats: the same specs as the tests

from support.driver_stats import feature_refs, specs_yaml  # noqa: E402

# the driver statistics view the online-read and server benches use too (one copy: tests/support)
SPECS = specs_yaml(view="driver_stats", source="stats_source", path="data/stats.parquet", online=True)
FEATURES = feature_refs("driver_stats")
PROJECT = """\
name: bench_repo
version: "0.1.0"
config-version: 2
profile: bench_repo
model-paths: ["models"]
"""
PROFILES = """\
bench_repo:
  target: dev
  outputs:
    dev: {type: duckdb, path: data/warehouse.duckdb, threads: 2}
"""


HISTORY = 10  # feature rows per driver in the warehouse


def stats_table(count: int, now: datetime, seed: int, changed: float = 0.0, history: int = HISTORY) -> pa.Table:
    """``history`` rows per driver, 12 hours apart, the newest 2 hours old (the snapshot holds it)."""
    rng = np.random.default_rng(seed)
    parts = []
    for age in range(history):
        event = np.full(count, np.datetime64(now - timedelta(hours=2 + 12 * age), "us"))
        parts.append(pa.table({
            "driver_id": np.arange(1, count + 1, dtype=np.int64),
            "event_timestamp": event,
            "created": event + np.timedelta64(5, "m"),
            "conv_rate": rng.random(count, dtype=np.float32),
            "acc_rate": rng.random(count, dtype=np.float32),
            "avg_daily_trips": rng.integers(0, 100, count),
        }))
    table = pa.concat_tables(parts)
    if changed:
        # a newer row for 1% of the drivers, written to the warehouse now (its created time)
        newer = parts[0].filter(pa.array(rng.random(count) < changed))
        later = pa.array(np.full(newer.num_rows, np.datetime64(now - timedelta(hours=1), "us")))
        arrived = np.datetime64(datetime.now(timezone.utc).replace(tzinfo=None), "us")
        newer = newer.set_column(1, "event_timestamp", later).set_column(
            2, "created", pa.array(np.full(newer.num_rows, arrived)))
        table = pa.concat_tables([table, newer])
    return table


def make_repo(folder: Path, count: int, now: datetime) -> Path:
    root = folder / "repo"
    (root / "data").mkdir(parents=True)
    (root / "feature_specs").mkdir()
    (root / "feature_specs" / "specs.yml").write_text(SPECS)
    (root / "dbt_project.yml").write_text(PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "dbt_packages").mkdir()
    os.symlink(ROOT, root / "dbt_packages" / "featurehouse")
    pq.write_table(stats_table(count, now, 1), root / "data" / "stats.parquet")
    return root


def build(root: Path, *dbt_args: str) -> float:
    """Compile and `dbt build`; return dbt's execution time of the online_driver_stats model."""
    import json

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    (root / "featurehouse.yml").write_text("project: bench_repo\nonline_store:\n  type: sqlite\n")
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    code = "from dbt.cli.main import dbtRunner; import sys; sys.exit(0 if dbtRunner().invoke(sys.argv[1:]).success else 1)"
    subprocess.run([sys.executable, "-c", code, "build", "--quiet", *dbt_args, "--project-dir", str(root),
                    "--profiles-dir", str(root)], cwd=root, check=True)
    results = json.loads((root / "target" / "run_results.json").read_text())["results"]
    return next(r["execution_time"] for r in results if r["unique_id"] == "model.bench_repo.online_driver_stats")


def configure(root: Path, kind: str, name: str) -> None:
    store = {"sqlite": f"  type: sqlite\n  path: data/{name}.db\n",
             "postgres": f"  type: postgres\n  url: {POSTGRES_URL}\n  schema: {name}\n",
             "redis": f"  type: redis\n  url: {REDIS_URL}\n  key_prefix: {name}\n"}[kind]
    (root / "featurehouse.yml").write_text(f"project: bench_repo\nonline_store:\n{store}")


def snapshot_rows(root: Path, latest_build_only: bool = False) -> pa.Table:
    """The snapshot's rows (or only those the latest dbt build wrote), in the raw clients' column order."""
    import duckdb

    where = (" where snapshot_built_at = (select max(snapshot_built_at) from main.online_driver_stats)"
             if latest_build_only else "")
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(f"select {', '.join(COLUMNS)} from main.online_driver_stats{where}").to_arrow_table()
    finally:
        con.close()


# ---- raw clients doing the same writes ------------------------------------------------------------------
# upsert=False: a full load into a new table; upsert=True: the incremental sync's rows into that table
COLUMNS = ["driver_id", "event_timestamp", "created_timestamp", "conv_rate", "acc_rate", "avg_daily_trips"]
UPDATES = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])


def raw_sqlite(root: Path, table: pa.Table, name: str, upsert: bool = False) -> float:
    import sqlite3

    import pyarrow.compute as pc

    path = root / "data" / f"{name}_raw.db"
    started = time.perf_counter()
    # timestamps as the text the sync stores (sqlite3's datetime adapter is deprecated and slow)
    columns = [pc.cast(c, pa.string()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    rows = list(zip(*(c.to_pylist() for c in columns)))
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # as the sync's connection: fsync at checkpoints only
    if not upsert:
        con.execute("create table t (driver_id integer not null primary key, event_timestamp text not null, "
                    "created_timestamp text, conv_rate real, acc_rate real, avg_daily_trips integer) without rowid")
    con.execute("begin")
    suffix = f" on conflict (driver_id) do update set {UPDATES}" if upsert else ""
    con.executemany(f"insert into t values (?, ?, ?, ?, ?, ?){suffix}", rows)
    con.execute("commit")
    con.close()
    return time.perf_counter() - started


def raw_postgres(table: pa.Table, name: str, upsert: bool = False) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(POSTGRES_URL) as con:
        target = f'"{name}".raw'
        if upsert:
            con.execute(f"create temporary table stage (like {target}) on commit drop")
        else:
            con.execute(f'create schema if not exists "{name}"')
            con.execute(f"create table {target} (driver_id bigint primary key, event_timestamp timestamptz, "
                        "created_timestamp timestamptz, conv_rate real, acc_rate real, avg_daily_trips bigint)")
        with con.cursor().copy(f"copy {'stage' if upsert else target} from stdin") as copy:
            for batch in table.to_batches(100_000):
                for row in zip(*(c.to_pylist() for c in batch.columns)):
                    copy.write_row(row)
        if upsert:
            con.execute(f"insert into {target} select * from stage on conflict (driver_id) do update set {UPDATES}")
    return time.perf_counter() - started


def raw_redis(table: pa.Table, name: str, upsert: bool = False) -> float:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    started = time.perf_counter()
    columns = {c: table.column(c).to_pylist() for c in table.column_names}
    pipe = client.pipeline(transaction=False)
    for i, driver in enumerate(columns["driver_id"]):
        pipe.hset(f"{name}raw:driver_stats:{driver}", mapping={
            "_ts": int(columns["event_timestamp"][i].timestamp() * 1e6),
            "_created": int(columns["created_timestamp"][i].timestamp() * 1e6),
            "conv_rate": columns["conv_rate"][i], "acc_rate": columns["acc_rate"][i],
            "avg_daily_trips": columns["avg_daily_trips"][i]})
        if len(pipe) >= 10_000:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


RAW = {"sqlite": lambda root, rows, name, upsert: raw_sqlite(root, rows, name, upsert),
       "postgres": lambda root, rows, name, upsert: raw_postgres(rows, name, upsert),
       "redis": lambda root, rows, name, upsert: raw_redis(rows, name, upsert)}


def cleanup(kind: str, name: str, root: Path) -> None:
    if kind == "postgres":
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            con.execute(f'drop schema if exists "{name}" cascade')
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for prefix in (name, name + "raw"):
            batch = []
            for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    args = parser.parse_args()
    kinds = args.stores.split(",")

    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    now = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="fh-bench-sync-"))
    names = {kind: f"fhbench_{uuid.uuid4().hex[:8]}" for kind in kinds}
    try:
        print(f"building {args.entities:,} entities in DuckDB ...", file=sys.stderr)
        root = make_repo(folder, args.entities, now)
        full_build = build(root)
        rows = snapshot_rows(root)
        results = {}
        for kind in kinds:
            configure(root, kind, names[kind])
            store = FeatureStore(root)
            full = sync(store)
            raw = RAW[kind](root, rows, names[kind], False)
            results[kind] = [full.seconds, raw]
            print(f"{kind}: full {full.summary()}; raw client {raw:.2f} s", file=sys.stderr)
        pq.write_table(stats_table(args.entities, now, 1, changed=0.01), root / "data" / "stats.parquet")
        incremental_build = build(root)
        changed = snapshot_rows(root, latest_build_only=True)
        for kind in kinds:
            configure(root, kind, names[kind])
            incremental = sync(FeatureStore(root))
            raw = RAW[kind](root, changed, names[kind], True)
            results[kind] += [incremental.seconds, incremental.written, incremental.fetched, raw]
            print(f"{kind}: incremental {incremental.summary()}; raw client {raw:.3f} s", file=sys.stderr)
        label = {"sqlite": "SQLite (raw: sqlite3 executemany)", "postgres": "Postgres (raw: psycopg COPY write_row)",
                 "redis": "Redis (raw: redis-py pipelined HSET)"}
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n{args.entities:,} entities x 3 features, one run, same process (2-core machine, "
              f"load average {load})\n")
        print("| store | full sync | entities/s | raw client | sync / raw | incremental (1% changed) | fetched | written "
              "| raw client, same rows | incremental / full |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind in kinds:
            full, raw, incremental, written, fetched, raw_incremental = results[kind]
            print(f"| {label[kind]} | {full:.2f} s | {args.entities / full:,.0f} | {raw:.2f} s | {full / raw:.2f}x | "
                  f"{incremental:.3f} s | {fetched:,} | {written:,} | {raw_incremental:.3f} s | "
                  f"{100 * incremental / full:.1f}% |")
        print(f"\n`dbt build` of the latest-snapshot model online_driver_stats over {HISTORY * args.entities:,} feature rows (dbt's execution time): "
              f"full {full_build:.2f} s, incremental after 1% changed {incremental_build:.2f} s "
              f"({100 * incremental_build / full_build:.0f}%)")
    finally:
        for kind in kinds:
            cleanup(kind, names[kind], folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
