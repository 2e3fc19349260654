"""Redis Cluster as the online store (online_store: {type: redis, url: …, cluster: true}).

A local cluster of 3 primaries (the session's ``redis_cluster`` fixture) holds the same
layout as a single Redis: the tests sync one repo to both and compare what readers get,
count the pipelines a batch read costs, read the keys with redis-cli alone, and kill -9
the sync and a node. The node-kill test starts its own cluster of 3 primaries with one
replica each, so that the session's cluster stays whole.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.online import (
    SPECS,
    build_repo,
    bulk_stats,
    drop_store,
    online_values,
    rebuild_in_subprocess,
    redis_store,
    set_store,
    snapshot,
    unique,
    utc_hour,
    write_bulk,
)
from support.redis_cluster import start_cluster
from support.repos import write_repo

from featurehouse.errors import OnlineStoreError, SpecError
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import SyncBusyError, open_backend, sync
from featurehouse.sync.layout import ViewLayout

DRIVERS = range(1, 301)
STATS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
PAIRS = ["pairs:rating", "pairs:last_seen"]
FEATURES = ["conv_rate", "trips", "city", "active"]
CLI = [sys.executable, "-c", "from featurehouse.cli.app import main; main()"]


def cluster_store(url: str, prefix: str) -> str:
    return f"  type: redis\n  url: {url}\n  key_prefix: {prefix}\n  cluster: true\n"


def cluster_keys(cluster, pattern: str) -> list[bytes]:
    """Every key matching ``pattern`` on every primary, by redis-cli alone."""
    keys: list[bytes] = []
    for port in cluster.processes:
        if "role:master" not in cluster.cli(port, "info", "replication"):
            continue
        out = subprocess.run(["redis-cli", "-p", str(port), "--scan", "--pattern", pattern],
                             capture_output=True, check=True).stdout
        keys += [k for k in out.split(b"\n") if k]
    return keys


def drop_cluster_prefix(url: str, prefix: str) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    try:
        for node in client.get_primaries():
            for key in list(node.redis_connection.scan_iter(match=f"{prefix}:*", count=10_000)):
                node.redis_connection.unlink(key)
    finally:
        client.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_repo")
    now = utc_hour()
    build_repo(root, DRIVERS, "  type: sqlite\n  path: data/online.db\n", now)
    return root, now


@pytest.fixture
def both(built, redis_url, redis_cluster):
    """The built repo synced to a single Redis and to the cluster, each under a fresh prefix."""
    root, now = built
    single_prefix, cluster_prefix = unique("fhh6single"), unique("fhh6cl")
    set_store(root, redis_store(redis_url, single_prefix))
    single = FeatureStore(root)
    single_report = sync(single)
    set_store(root, cluster_store(redis_cluster.url, cluster_prefix))
    clustered = FeatureStore(root)
    cluster_report = sync(clustered)
    yield root, now, single, clustered, single_report, cluster_report, cluster_prefix
    drop_store("redis", redis_url, single_prefix)
    drop_cluster_prefix(redis_cluster.url, cluster_prefix)


def entities() -> dict[str, list]:
    drivers = [*DRIVERS, 10_000]  # one entity nobody synced
    riders = [f"r:{d % 3}" if d % 2 else "r\\x" for d in drivers]
    return {"driver_id": drivers, "rider_id": riders}


def test_sync_and_reads_on_the_cluster_equal_the_single_node(both, redis_cluster):
    root, now, single, clustered, single_report, cluster_report, prefix = both
    assert cluster_report.written == single_report.written > 0
    assert cluster_report.rows_read == single_report.rows_read
    ents = entities()
    for refs in (STATS, PAIRS, STATS + PAIRS):
        want = online_values(single, refs, ents, now)
        got = online_values(clustered, refs, ents, now)
        assert got.values == want.values
        assert got.statuses == want.statuses
        assert got.event_timestamps == want.event_timestamps
    # the entities spread over every primary: no hash tag pins a view to one node
    per_node = [len(cluster_keys_on(redis_cluster, port, f"{prefix}:stats:*")) for port in redis_cluster.ports]
    assert all(count > 0 for count in per_node), per_node
    assert sum(per_node) == snapshot(root, "stats").num_rows
    # a second sync finds the state where the first left it (on whichever node holds it) and writes nothing
    assert sync(clustered).written == 0


def cluster_keys_on(cluster, port: int, pattern: str) -> list[bytes]:
    out = subprocess.run(["redis-cli", "-p", str(port), "--scan", "--pattern", pattern],
                         capture_output=True, check=True).stdout
    return [k for k in out.split(b"\n") if k]


def test_a_batch_read_costs_one_pipeline_per_node(both, redis_cluster, monkeypatch):
    from redis.connection import Connection

    _root, now, _single, clustered, *_ = both
    sends: list[tuple[str, int]] = []
    connects: list[tuple[str, int]] = []
    original_send, original_connect = Connection.send_packed_command, Connection.connect

    def counting_send(self, command, check_health=True):
        sends.append((self.host, self.port))
        return original_send(self, command, check_health)

    def counting_connect(self, *args, **kwargs):
        if self._sock is None:
            connects.append((self.host, self.port))
        return original_connect(self, *args, **kwargs)

    from featurehouse.online.reader import OnlineReader

    reader = OnlineReader(clustered)
    try:
        batch = {"driver_id": list(range(1, 101)), "rider_id": ["r\\x"] * 100}
        reader.read(STATS + PAIRS, batch, now=now)  # warm: slot map, connections, prepared views
        for port in redis_cluster.ports:
            redis_cluster.cli(port, "config", "resetstat")
        monkeypatch.setattr(Connection, "send_packed_command", counting_send)
        monkeypatch.setattr(Connection, "connect", counting_connect)
        reader.read(STATS + PAIRS, batch, now=now)
    finally:
        monkeypatch.undo()
        reader.close()
    # one send per primary, no new connection, and the servers ran one HMGET per (view, entity)
    assert sorted(sends) == sorted(set(sends)) and len(sends) == 3, sends
    assert connects == []
    calls = 0
    for port in redis_cluster.ports:
        for line in redis_cluster.cli(port, "info", "commandstats").splitlines():
            if line.startswith("cmdstat_hmget:"):
                calls += int(line.split("calls=")[1].split(",")[0])
    assert calls == 200


def test_redis_cli_reads_the_documented_layout(both, redis_cluster):
    root, _now, _single, _clustered, *_, prefix = both
    expected = snapshot(root, "stats").sort_by("driver_id").to_pylist()
    for row in expected[:40]:
        key = f"{prefix}:stats:{row['driver_id']}"  # docs/store-layouts.md: P:<view>:<key>, no hash tag
        # -c: redis-cli follows the MOVED redirect to the node holding the key, as any cluster client does
        raw = subprocess.run(["redis-cli", "-c", "-p", str(redis_cluster.ports[0]), "hgetall", key],
                             capture_output=True, check=True).stdout.decode().split("\n")
        fields = dict(zip(raw[0:-1:2], raw[1::2]))
        event = row["event_timestamp"].replace(tzinfo=timezone.utc)
        assert int(fields["_ts"]) == (event - datetime(1970, 1, 1, tzinfo=timezone.utc)) // _micro()
        assert int(fields["trips"]) == row["trips"]
        assert float(fields["conv_rate"]) == row["conv_rate"]  # the float32, widened, as the shortest decimal
        assert fields.get("city") == row["city"]  # a NULL feature has no field
        assert fields["active"] == ("true" if row["active"] else "false")
    # the bookkeeping keys are plain keys too, each on the node its slot names
    state = subprocess.run(["redis-cli", "-c", "-p", str(redis_cluster.ports[0]), "hget", f"{prefix}:#state:stats",
                            "signature"], capture_output=True, check=True).stdout.strip()
    assert state


def _micro():
    from datetime import timedelta

    return timedelta(microseconds=1)


def test_the_lock_is_one_key_every_sync_agrees_on(both, redis_cluster):
    root, _now, _single, clustered, *_, _prefix = both
    backend = open_backend(clustered.repo.config.online_store, clustered.repo_path)
    backend.connect()
    try:
        with backend.lock(0):
            with pytest.raises(SyncBusyError, match="another featurehouse sync is writing to the Redis Cluster"):
                sync(FeatureStore(root))
        # released: the next sync runs
        assert sync(FeatureStore(root)).written == 0
    finally:
        backend.close()


def test_a_full_refresh_drops_entities_gone_from_every_node(both, redis_cluster):
    from redis.cluster import RedisCluster

    root, _now, _single, _clustered, *_, prefix = both
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        strays = [f"{prefix}:stats:{900_000 + i}" for i in range(60)]  # spread over every node's slots
        for key in strays:
            client.hset(key, mapping={"_ts": "1", "trips": "1"})
        kept = len(cluster_keys(redis_cluster, f"{prefix}:stats:*")) - len(strays)
        sync(FeatureStore(root), ["stats"], full_refresh=True)
        assert not any(client.exists(key) for key in strays)
        assert len(cluster_keys(redis_cluster, f"{prefix}:stats:*")) == kept == snapshot(root, "stats").num_rows
    finally:
        client.close()


def test_cluster_true_with_another_type_is_one_sentence(tmp_path):
    from featurehouse.spec.repo import load_config

    (tmp_path / "featurehouse.yml").write_text("project: p\nonline_store:\n  type: sqlite\n  cluster: true\n")
    with pytest.raises(SpecError, match="cluster: true is for type redis"):
        load_config(tmp_path)


def test_cluster_true_on_a_plain_redis_is_one_sentence(built, redis_url):
    root, _now = built
    set_store(root, cluster_store(redis_url, unique("fhh6plain")))
    with pytest.raises(OnlineStoreError, match=r"not a cluster .*remove cluster: true"):
        sync(FeatureStore(root))


def test_a_stale_slot_map_is_refreshed_not_misread(both, redis_cluster):
    """A key whose slot moved to another node (MOVED) is read from its new node, never answered wrong."""
    _root, now, _single, clustered, *_, _prefix = both
    from featurehouse.online.reader import OnlineReader

    reader = OnlineReader(clustered)
    try:
        first = reader.read(STATS, {"driver_id": list(DRIVERS)}, now=now)
        inner = reader._reader  # the store's reader: point every slot at one node, as after a resharding
        inner._owner = [inner._owner[0]] * len(inner._owner)
        again = reader.read(STATS, {"driver_id": list(DRIVERS)}, now=now)
    finally:
        reader.close()
    assert again.values == first.values
    assert again.statuses == first.statuses


# ---- kill -9 ----------------------------------------------------------------------------------------
ENTITIES = 60_000


@pytest.fixture(scope="module")
def big(tmp_path_factory, redis_cluster):
    root = tmp_path_factory.mktemp("cluster_kill")
    now = utc_hour()
    write_repo(root, SPECS)
    write_bulk(root, bulk_stats(ENTITIES, now), now)
    rebuild_in_subprocess(root)  # dbt in-process would keep DuckDB locked against the child syncs
    prefix = unique("fhh6kill")
    set_store(root, cluster_store(redis_cluster.url, prefix))
    yield root, prefix
    drop_cluster_prefix(redis_cluster.url, prefix)


def _assert_store_is_the_snapshot(root: Path, store: FeatureStore, context: str, cluster, prefix: str) -> None:
    expected = snapshot(root, "stats").sort_by("driver_id")
    backend = open_backend(store.repo.config.online_store, store.repo_path)
    reader = backend.reader()
    try:
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
    assert len(cluster_keys(cluster, f"{prefix}:stats:*")) == len(ids), context
    assert sync(store, ["stats"]).written == 0, context  # the state matches the store


def test_kill_9_of_the_sync_mid_write_then_rerun(big, redis_cluster):
    root, prefix = big
    seed = int(os.environ.get("FEATUREHOUSE_TEST_SEED", time.time()))
    rng = random.Random(seed)
    started = time.monotonic()
    subprocess.run([*CLI, "--repo", str(root), "sync"], check=True, capture_output=True)
    duration = time.monotonic() - started
    for args in ([], ["--full-refresh"]):
        delay = rng.uniform(0.3, 0.95) * duration
        process = subprocess.Popen([*CLI, "--repo", str(root), "sync", *args],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        store = FeatureStore(root)
        # the dead sync's lock (its pid is gone on this host) is taken over at once
        sync(store, ["stats"], full_refresh="--full-refresh" in args, wait=20)
        _assert_store_is_the_snapshot(root, store, f"seed {seed}, {args}, killed at {delay:.2f} s of "
                                      f"{duration:.2f} s", redis_cluster, prefix)


@pytest.mark.redis
def test_kill_9_of_a_node_during_reads(built):
    """Reads while a primary dies: each read is right or fails with one OnlineStoreError; after
    a replica takes over, reads are right again. A primary with no replica left: reads fail."""
    root, now = built
    try:
        cluster = start_cluster(3, replicas=1, node_timeout_ms=1000)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        set_store(root, cluster_store(cluster.url, "fhh6failover"))
        store = FeatureStore(root)
        sync(store)
        # Redis replicates asynchronously: a primary killed before its replica has the writes loses
        # them (Redis allows that; docs/known-gaps.md). This test is about reads, so it waits.
        cluster.wait_replicated()
        from featurehouse.online.reader import OnlineReader

        reader = OnlineReader(store)
        ents = {"driver_id": list(DRIVERS)}
        want = reader.read(STATS, ents, now=now)
        outcomes: list[str] = []
        errors: list[str] = []
        wrong: list[str] = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    got = reader.read(STATS, ents, now=now)
                except OnlineStoreError as error:
                    outcomes.append("error")
                    errors.append(str(error))
                    time.sleep(0.05)
                    continue
                if got.values != want.values or got.statuses != want.statuses:  # never a wrong value
                    wrong.append(f"after {outcomes[-3:]}: statuses {got.statuses}")
                outcomes.append("ok")

        thread = threading.Thread(target=loop)
        thread.start()
        time.sleep(0.3)
        victim = cluster.primary_of(f"fhh6failover:stats:{DRIVERS[0]}".encode())
        cluster.kill(victim)
        cluster.wait_failover(victim)  # a replica took over the dead primary's slots
        seen = len(outcomes)
        deadline = time.monotonic() + 30  # the reader finds the new primary on its own
        while time.monotonic() < deadline and not (len(outcomes) > seen and outcomes[-1] == "ok"):
            time.sleep(0.1)
        stop.set()
        thread.join()
        assert not wrong, wrong[:3]
        assert outcomes and outcomes[-1] == "ok", (outcomes[-5:], errors[-1:])
        assert "error" in outcomes  # the dead node was noticed, not silently skipped
        for text in errors:
            assert "\n" not in text and "Traceback" not in text
            assert text.startswith("the Redis Cluster online store") or text.startswith("reading the Redis Cluster")
        assert reader.read(STATS, ents, now=now).values == want.values

        # the promoted replica dies too: no copy of its slots is left, every read of them fails
        second = cluster.primary_of(f"fhh6failover:stats:{DRIVERS[0]}".encode())
        cluster.kill(second)
        with pytest.raises(OnlineStoreError, match=f"node 127.0.0.1:{second} does not answer"):
            reader.read(STATS, ents, now=now)
        reader.close()
    finally:
        cluster.stop()


# ---- slots -------------------------------------------------------------------------------------------
KEY_BYTES = st.binary(max_size=12) | st.text(alphabet="ab{}:\\ü", max_size=12).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from([b"", b"fh:stats:", b"fh{x}:", b"{}:"]), suffixes=st.lists(KEY_BYTES, max_size=40))
def test_vectorised_slots_equal_redis_py_key_slot(prefix, suffixes):
    """The sync's numpy CRC16 places every key in the slot Redis (and redis-py) computes, hash tags included."""
    import pyarrow as pa
    from redis.crc import key_slot

    from featurehouse.sync.redis_cluster import key_slots

    keys = [prefix + s for s in suffixes]
    assert key_slots(pa.array(keys, pa.binary()), prefix).tolist() == [key_slot(k) for k in keys]


@pytest.mark.redis
def test_the_cluster_bench_runs_and_prints_its_tables():
    """bench/bench_redis_cluster.py on tiny data (timings are not checked: see docs/benchmarks.md)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_redis_cluster.py"
    result = subprocess.run([sys.executable, str(bench), "--entities", "500", "--calls", "50", "--nodes", "1,3",
                             "--repeat", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Redis Cluster | 3 |" in result.stdout and "| 3-node cluster, batch 100 |" in result.stdout
