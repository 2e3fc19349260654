"""Faults: kill -9 at random points, overlapping syncs, unreachable store or warehouse."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timezone

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import open_backend, sync
from support.online import (
    bulk_stats,
    drop_store,
    postgres_store,
    rebuild_in_subprocess,
    redis_store,
    set_store,
    snapshot,
    sqlite_store,
    unique,
    utc_hour,
    write_bulk,
)

KINDS = ["sqlite", "postgres", "redis"]
ENTITIES = 60_000
FEATURES = ["conv_rate", "trips", "city", "active"]
CLI = [sys.executable, "-c", "from featurehouse.cli.app import main; main()"]


def _count(kind, store):
    config = store.repo.config.online_store
    if kind == "sqlite":
        with sqlite3.connect(store.repo_path / config.path) as con:
            return con.execute("select count(*) from stats").fetchone()[0]
    if kind == "postgres":
        import psycopg

        with psycopg.connect(config.url) as con:
            return con.execute(f'select count(*) from "{config.schema_}".stats').fetchone()[0]
    import redis

    client = redis.Redis.from_url(config.url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{config.key_prefix}:stats:*", count=10_000))
    finally:
        client.close()


def _assert_store_is_the_snapshot(root, kind, store, context):
    """Every entity of the snapshot, exactly (time and values), and nothing else; a rerun writes nothing."""
    expected = snapshot(root, "stats").sort_by("driver_id")
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    reader = backend.reader()
    try:
        from featurehouse.sync.layout import ViewLayout

        layout = ViewLayout.of(store.repo, store.repo.feature_views["stats"])
        prepared = reader.prepare(layout, FEATURES)
        ids = expected.column("driver_id").to_pylist()
        stored = reader.read([(prepared, [(i,) for i in ids])])[0]
    finally:
        reader.close()
    events = expected.column("event_timestamp").to_pylist()
    columns = [expected.column(f).to_pylist() for f in FEATURES]
    for i, row in enumerate(stored):
        assert row is not None, (context, ids[i])
        assert row[0] == events[i].replace(tzinfo=timezone.utc), (context, ids[i])
        assert row[1] == [c[i] for c in columns], (context, ids[i])
    assert _count(kind, store) == len(ids), context
    assert sync(store, ["stats"]).written == 0, context  # the state matches the store


@pytest.fixture(scope="module")
def big(tmp_path_factory, postgres_url, redis_url):
    from support.online import SPECS
    from support.repos import write_repo

    root = tmp_path_factory.mktemp("faults")
    now = utc_hour()
    write_repo(root, SPECS)
    write_bulk(root, bulk_stats(ENTITIES, now), now)
    rebuild_in_subprocess(root)  # dbt in-process would keep DuckDB locked against the child syncs
    names = {"postgres": unique("fh_kill"), "redis": unique("fhkill")}
    configs = {"sqlite": sqlite_store(), "postgres": postgres_store(postgres_url, names["postgres"]),
               "redis": redis_store(redis_url, names["redis"])}
    yield root, now, configs
    drop_store("postgres", postgres_url, names["postgres"])
    drop_store("redis", redis_url, names["redis"])


def _store(root, config):
    set_store(root, config)
    return FeatureStore(root)


def _kill_during(root, args, delay):
    process = subprocess.Popen([*CLI, "--repo", str(root), "sync", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


def test_kill_9_at_random_points_then_rerun_leaves_the_store_exactly_right(big):
    root, now, configs = big
    seed = int(os.environ.get("FEATUREHOUSE_TEST_SEED", time.time()))
    rng = random.Random(seed)
    durations = {}
    for kind, config in configs.items():  # how long an uninterrupted sync takes, start-up included
        set_store(root, config)
        started = time.monotonic()
        subprocess.run([*CLI, "--repo", str(root), "sync"], check=True, capture_output=True)
        durations[kind] = time.monotonic() - started

    def phase(name, args):
        for kind, config in configs.items():
            set_store(root, config)
            delay = rng.uniform(0.3, 0.95) * durations[kind]
            code = _kill_during(root, args, delay)
            store = _store(root, config)
            # cron runs the same command again; the dead sync's lock is released (file lock,
            # Postgres session) or taken over (Redis: its owner process is gone)
            sync(store, ["stats"], full_refresh="--full-refresh" in args, wait=20)
            _assert_store_is_the_snapshot(root, kind, store, f"seed {seed}, {name}, {kind}, killed at {delay:.2f} s "
                                                            f"of {durations[kind]:.2f} s (exit {code})")

    phase("full refresh", ["--views", "stats", "--full-refresh"])
    write_bulk(root, bulk_stats(ENTITIES, now, changed=0.3), now)  # 30% of the drivers get a newer row
    rebuild_in_subprocess(root)
    phase("incremental sync", ["--views", "stats"])
    write_bulk(root, bulk_stats(ENTITIES - 100, now, seed=4), now)  # different values, 100 drivers gone
    rebuild_in_subprocess(root, full_refresh=True)  # rows changed in place: only a full build sees them
    phase("full refresh dropping entities", ["--views", "stats", "--full-refresh"])


def test_overlapping_syncs_exit_with_one_line_or_wait(big):
    root, _, configs = big
    for kind, config in configs.items():
        store = _store(root, config)
        backend = open_backend(store.repo.config.online_store, store.repo_path)
        backend.connect()
        try:
            with backend.lock(0):
                result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "pairs"])
                assert result.exit_code == 75, (kind, result.output)
                lines = result.output.strip().splitlines()
                assert len(lines) == 1 and "another featurehouse sync is writing to" in lines[0], kind
                # who holds it, said once
                assert re.search(rf" \(pid {os.getpid()} on \S+ since \d\d:\d\d:\d\d UTC\); this one exits", lines[0]), lines
                assert lines[0].endswith("(use --wait SECONDS to wait for it)"), kind
                result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "pairs", "--wait", "0.5"])
                assert result.exit_code == 75, (kind, result.output)
                assert result.output.strip().endswith("(still busy after waiting 0.5 s)"), (kind, result.output)
            holder = threading.Thread(target=_hold_for, args=(backend, 1.0))
            holder.start()
            time.sleep(0.3)
            result = CliRunner().invoke(main, ["--repo", str(root), "sync", "--views", "pairs", "--wait", "20"])
            holder.join()
            assert result.exit_code == 0, (kind, result.output)
            assert "synced 1 view(s) [pairs" in result.output
        finally:
            backend.close()


def _hold_for(backend, seconds):
    with backend.lock(0):
        time.sleep(seconds)


@pytest.mark.parametrize(("store_config", "message"), [
    ("  type: redis\n  url: redis://127.0.0.1:1/0\n", "Error: cannot reach the Redis online store 127.0.0.1:1/0"),
    ("  type: postgres\n  url: postgresql://postgres@127.0.0.1:1/test\n",
     "Error: cannot reach the Postgres online store 127.0.0.1:1/test"),
    ("  type: sqlite\n  path: /proc/featurehouse/online.db\n", "Error: cannot open the SQLite online store"),
])
def test_unreachable_store_exits_1_with_one_line(tmp_path, store_config, message):
    from support.online import SPECS
    from support.repos import write_repo

    import duckdb

    root = write_repo(tmp_path / "repo", SPECS, online_store=store_config)
    duckdb.connect(str(root / "data" / "warehouse.duckdb")).close()  # a warehouse: the store fails before its models matter
    result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_unreachable_warehouse_exits_1_and_the_state_does_not_advance(big, tmp_path):
    root, _, configs = big
    store = _store(root, configs["sqlite"])
    sync(store, ["pairs"])
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    before = {s.view: s.synced_at for s in backend.states()}
    backend.close()
    warehouse = root / "data" / "warehouse.duckdb"
    shutil.move(warehouse, tmp_path / "moved.duckdb")
    try:
        result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
        _store(root, "  type: sqlite\n  path: data/first.db\n")  # a store never synced before
        first = CliRunner().invoke(main, ["--repo", str(root), "sync"])
    finally:
        _store(root, configs["sqlite"])
        shutil.move(tmp_path / "moved.duckdb", warehouse)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "warehouse" in lines[0] and "does not exist yet; run 'dbt build' first" in lines[0]
    assert first.exit_code == 1 and "does not exist yet" in first.output
    assert not (root / "data" / "first.db").exists()  # no empty store left to read NOT_FOUND from
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    assert {s.view: s.synced_at for s in backend.states()} == before
    backend.close()


def test_unreachable_postgres_warehouse_exits_1(tmp_path):
    from support.repos import write_repo

    from support.online import SPECS

    root = write_repo(tmp_path / "repo", SPECS, postgres_url="postgresql://postgres@127.0.0.1:1/test", target="pg")
    result = CliRunner().invoke(main, ["--repo", str(root), "sync"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to the Postgres warehouse"), result.output
