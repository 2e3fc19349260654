"""Test support for the online half: a feature repo over parquet files, the three stores, comparisons."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from support.repos import drop_postgres_schema, run_dbt, write_repo

SPECS = {
    "specs.yml": """\
    entities:
      - name: driver
        join_keys: [driver_id]
        value_type: int64
      - name: rider
        join_keys: [rider_id]
        value_type: string
    sources:
      - name: stats_source
        path: data/stats.parquet
        timestamp_field: event_timestamp
        created_timestamp_column: created
      - name: pair_source
        path: data/pairs.parquet
        timestamp_field: event_timestamp
    feature_views:
      - name: stats
        entities: [driver]
        source: stats_source
        ttl: 1d
        schema:
          - {name: conv_rate, dtype: float32}
          - {name: trips, dtype: int64}
          - {name: city, dtype: string}
          - {name: active, dtype: bool}
        online: true
      - name: pairs
        entities: [driver, rider]
        source: pair_source
        schema:
          - {name: rating, dtype: float64}
          - {name: last_seen, dtype: timestamp}
        online: true
    feature_services:
      - name: ranking
        features: [stats:conv_rate, stats:trips, pairs:rating]
    """
}

STATS_SCHEMA = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us")),
                          ("created", pa.timestamp("us")), ("conv_rate", pa.float32()), ("trips", pa.int64()),
                          ("city", pa.string()), ("active", pa.bool_())])
PAIRS_SCHEMA = pa.schema([("driver_id", pa.int64()), ("rider_id", pa.string()), ("event_timestamp", pa.timestamp("us")),
                          ("rating", pa.float64()), ("last_seen", pa.timestamp("us"))])


def utc_hour() -> datetime:
    """Now, naive UTC, on the hour: data is placed hours away from every ttl boundary."""
    return datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)


def stats_rows(drivers: range, now: datetime, seed: int = 1) -> list[dict[str, Any]]:
    """Hourly rows per driver with the cases the point-in-time rule cares about."""
    rng = random.Random(seed)
    rows = []
    for driver in drivers:
        last = 30 if driver % 10 == 9 else 1  # every tenth driver: newest row 30 h old, expired (ttl 1d)
        for hours in range(last, last + 4):
            moment = now - timedelta(hours=hours)
            rows.append(dict(driver_id=driver, event_timestamp=moment, created=moment + timedelta(minutes=5),
                             conv_rate=round(rng.random(), 4), trips=rng.randint(0, 50),
                             city=rng.choice(["Oslo", "Bergen", "", "Tromsø", None]), active=rng.random() < 0.5))
        if driver % 7 == 3:  # a full tie on the newest row: greatest values win
            tie = dict(rows[-4])
            tie["conv_rate"] = round(rng.random(), 4)
            rows.append(tie)
        if driver % 5 == 2:  # a NULL created time on an older duplicate of the newest event
            dup = dict(rows[-4] if driver % 7 != 3 else rows[-5])
            dup.update(created=None, trips=999)
            rows.append(dup)
    return rows


def pairs_rows(drivers: range, now: datetime, seed: int = 2) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for driver in drivers:
        for rider in (f"r:{driver % 3}", "r\\x"):  # ':' and '\\' must survive the Redis key encoding
            for hours in (5, 50):
                moment = now - timedelta(hours=hours)
                rows.append(dict(driver_id=driver, rider_id=rider, event_timestamp=moment,
                                 rating=rng.choice([None, round(rng.uniform(1, 5), 3)]),
                                 last_seen=moment - timedelta(minutes=rng.randint(0, 600))))
    return rows


def write_data(root: Path, stats: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> None:
    pq.write_table(pa.Table.from_pylist(stats, schema=STATS_SCHEMA), root / "data" / "stats.parquet")
    pq.write_table(pa.Table.from_pylist(pairs, schema=PAIRS_SCHEMA), root / "data" / "pairs.parquet")


def build_repo(root: Path, drivers: range, online_store: str, now: datetime | None = None) -> Path:
    """A compiled and built feature repo (DuckDB warehouse) whose online store is ``online_store``."""

    now = now or utc_hour()
    write_repo(root, SPECS, online_store=online_store)
    write_data(root, stats_rows(drivers, now), pairs_rows(drivers, now))
    rebuild(root)
    return root


def rebuild(root: Path, full_refresh: bool = False) -> None:
    """Compile and `dbt build`; rows deleted from a source leave the (incremental) online
    snapshots only with ``full_refresh``."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    run_dbt(root, "build", "--quiet", *(["--full-refresh"] if full_refresh else []))


def set_store(root: Path, online_store: str) -> None:
    (root / "featurehouse.yml").write_text(f"project: test_repo\nspecs: feature_specs\nonline_store:\n{online_store}")


def sqlite_store(path: str = "data/online.db") -> str:
    return f"  type: sqlite\n  path: {path}\n"


def postgres_store(url: str, schema: str) -> str:
    return f"  type: postgres\n  url: {url}\n  schema: {schema}\n"


def redis_store(url: str, prefix: str) -> str:
    return f"  type: redis\n  url: {url}\n  key_prefix: {prefix}\n"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


KINDS = ["sqlite", "postgres", "redis"]


@dataclass
class EveryStore:
    """A repo synced once to each kind of store (see sync_to_every_store)."""

    stores: dict[str, Any]  # kind -> FeatureStore
    configs: dict[str, str]  # kind -> online_store: block of featurehouse.yml
    reports: dict[str, Any]  # kind -> SyncReport of the sync
    names: dict[str, str]  # the Postgres schema and Redis key prefix made for it

    def drop(self, postgres_url: str, redis_url: str) -> None:
        drop_store("postgres", postgres_url, self.names["postgres"])
        drop_store("redis", redis_url, self.names["redis"])


def sync_to_every_store(root: Path, postgres_url: str, redis_url: str, name: str) -> EveryStore:
    """Sync the built repo at ``root`` once to SQLite, a fresh Postgres schema and a fresh Redis
    key prefix; leave its featurehouse.yml on SQLite."""
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    names = {"postgres": unique(f"fh_{name}"), "redis": unique(f"fh{name}")}
    configs = {"sqlite": sqlite_store(), "postgres": postgres_store(postgres_url, names["postgres"]),
               "redis": redis_store(redis_url, names["redis"])}
    stores, reports = {}, {}
    for kind in KINDS:
        set_store(root, configs[kind])
        stores[kind] = FeatureStore(root)
        reports[kind] = sync(stores[kind])
    set_store(root, configs["sqlite"])
    return EveryStore(stores, configs, reports, names)


def drop_store(kind: str, url: str, name: str) -> None:
    if kind == "postgres":
        drop_postgres_schema(url, name)
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{name}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.unlink(*keys[start:start + 10_000])
        client.close()


def _query(root: Path, sql: str) -> pa.Table:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.warehouse import connect

    store = FeatureStore(root)
    warehouse = connect(store.target, store.repo_path)
    try:
        return warehouse.arrow(sql)
    finally:
        warehouse.close()


def snapshot(root: Path, view: str) -> pa.Table:
    """The online_<view> model as the warehouse holds it."""
    return _query(root, f'select * from main."online_{view}"')


def all_keys(root: Path, view: str, keys: list[str]) -> dict[str, list[Any]]:
    """Every entity of the view's fv_ model (synced or not), as entity columns."""
    names = ", ".join(f'"{k}"' for k in keys)
    table = _query(root, f'select distinct {names} from main."fv_{view}" order by {names}')
    return {k: table.column(k).to_pylist() for k in keys}


def training_values(store: Any, refs: list[str], entities: dict[str, list[Any]], at: datetime) -> dict[str, list[Any]]:
    """What get_historical_features returns for (entity, at), per feature."""
    columns = {k: pa.array(v) for k, v in entities.items()}
    count = len(next(iter(entities.values())))
    columns["event_timestamp"] = pa.array([at.replace(tzinfo=None)] * count, pa.timestamp("us"))
    table = store.get_historical_features(pa.table(columns), refs).to_arrow()
    names = [r.split(":")[1] for r in refs]
    return {n: table.column(n).to_pylist() for n in names}


def online_values(store: Any, refs: list[str], entities: dict[str, list[Any]], at: datetime | None = None) -> Any:
    from featurehouse.online.reader import OnlineReader

    reader = OnlineReader(store)
    try:
        return reader.read(refs, entities, now=at)
    finally:
        reader.close()


def bulk_stats(count: int, now: datetime, seed: int = 3, changed: float = 0.0) -> pa.Table:
    """One row per driver (vectorised, for large tests); ``changed`` of them get a newer row too."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.arange(1, count + 1, dtype=np.int64)
    event = np.full(count, np.datetime64(now - timedelta(hours=2), "us"))
    table = pa.table({
        "driver_id": ids, "event_timestamp": event, "created": event + np.timedelta64(5, "m"),
        "conv_rate": rng.random(count, dtype=np.float32), "trips": rng.integers(0, 100, count),
        "city": pa.array(rng.choice(["Oslo", "Bergen", "Tromsø"], count)), "active": rng.random(count) < 0.5,
    }, schema=STATS_SCHEMA)
    if changed:
        picked = rng.random(count) < changed
        newer = table.filter(pa.array(picked))
        later = np.full(newer.num_rows, np.datetime64(now - timedelta(hours=1), "us"))
        newer = newer.set_column(1, "event_timestamp", pa.array(later)).set_column(2, "created", pa.array(later))
        newer = newer.set_column(4, "trips", pa.array(rng.integers(100, 200, newer.num_rows)))
        table = pa.concat_tables([table, newer])
    return table


def write_bulk(root: Path, stats: pa.Table, now: datetime) -> None:
    pq.write_table(stats, root / "data" / "stats.parquet")
    pq.write_table(pa.Table.from_pylist(pairs_rows(range(1, 3), now), schema=PAIRS_SCHEMA), root / "data" / "pairs.parquet")


def rebuild_in_subprocess(root: Path, full_refresh: bool = False) -> None:
    """Like rebuild(), but dbt runs in a child process, so no DuckDB lock stays behind in this one."""
    import subprocess
    import sys

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    code = "from dbt.cli.main import dbtRunner; import sys; sys.exit(0 if dbtRunner().invoke(sys.argv[1:]).success else 1)"
    subprocess.run([sys.executable, "-c", code, "build", "--quiet", *(["--full-refresh"] if full_refresh else []),
                    "--project-dir", str(root), "--profiles-dir", str(root)], cwd=root, check=True)
