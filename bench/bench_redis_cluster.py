"""Benchmark the Redis Cluster online store against a single Redis and against redis-py's own cluster client.

In one run, on loopback: a throwaway single redis-server and throwaway clusters of 1, 3 and
6 primaries (no replicas), each started here and stopped afterwards.

1. Full sync of the bench repo's entities (3 features) into the single Redis and into each
   cluster: seconds and entities/s, and the ratio to the single node.
2. Reads on the 3-node cluster: featurehouse's SDK at batch 1 and batch 100 beside the raw
   redis-py ``RedisCluster`` client doing the same HMGETs (batch 100: its cluster pipeline,
   which also sends one pipeline per node).

    .venv/bin/python bench/bench_redis_cluster.py [--entities 200000] [--calls 2000] [--nodes 1,3,6] [--repeat 3]

Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_online_reads
import bench_sync
from support.redis_cluster import start_cluster

FEATURES = bench_sync.FEATURES
FIELDS = ["_ts", "conv_rate", "acc_rate", "avg_daily_trips"]


def single_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway plain redis-server on a free loopback port (the shared one may be busy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        answer = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout
        if answer.strip() == "PONG":
            return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("the throwaway redis-server did not start")


def configure(root: Path, url: str, cluster: bool) -> None:
    (root / "featurehouse.yml").write_text(
        f"project: bench_repo\nonline_store:\n  type: redis\n  url: {url}\n  key_prefix: fhbench\n"
        + ("  cluster: true\n" if cluster else ""))


def server_cpu(ports: list[int]) -> float:
    """CPU seconds (user + sys) the Redis servers on ``ports`` have used so far (INFO cpu)."""
    total = 0.0
    for port in ports:
        info = subprocess.run(["redis-cli", "-p", str(port), "info", "cpu"], capture_output=True, text=True).stdout
        for line in info.splitlines():
            if line.startswith(("used_cpu_user:", "used_cpu_sys:")):
                total += float(line.split(":")[1])
    return total


def timed_sync(root: Path, ports: list[int]) -> tuple[float, float, float]:
    """Wall seconds, sync-process CPU seconds and server CPU seconds of one full sync."""
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    servers = server_cpu(ports)
    cpu = time.process_time()
    started = time.perf_counter()
    report = sync(FeatureStore(root), full_refresh=True)
    wall = time.perf_counter() - started
    assert report.written > 0
    return wall, time.process_time() - cpu, server_cpu(ports) - servers


def interleaved(first, second, calls: int) -> tuple[list[float], list[float]]:
    """Time ``first(i)`` and ``second(i)`` alternately (after a warm-up), so both see the same machine."""
    for i in range(min(200, calls)):
        first(i)
        second(i)
    a: list[float] = []
    b: list[float] = []
    clock = time.perf_counter
    for i in range(calls):
        started = clock()
        first(i)
        middle = clock()
        second(i)
        a.append(middle - started)
        b.append(clock() - middle)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--nodes", default="1,3,6", help="cluster sizes (primaries) to sync into")
    parser.add_argument("--repeat", type=int, default=3, help="full syncs per store (median), stores interleaved")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]

    from redis.cluster import RedisCluster

    from featurehouse.online.reader import OnlineReader
    from featurehouse.sdk.store import FeatureStore

    now = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="fh-bench-cluster-"))
    server = None
    clusters: dict[int, object] = {}
    sync_rows: list[tuple[str, int, float, float, float]] = []
    read_rows: list[tuple[str, float, float, str, float, float]] = []
    try:
        root = bench_sync.make_repo(folder, args.entities, now)
        bench_sync.build(root)
        server, url = single_redis(folder)
        for size in sizes:
            clusters[size] = start_cluster(size)
        # every store is up before the first sync, and the rounds interleave the stores, so
        # that a machine whose load changes meanwhile changes every store's figures alike
        stores = [("single redis-server", 1, url, False, [int(url.rsplit(":", 1)[1].split("/")[0])])] + [
            ("Redis Cluster", size, clusters[size].url, True, clusters[size].ports) for size in sizes]
        times: dict[int, list[tuple[float, float, float]]] = {i: [] for i in range(len(stores))}
        for _ in range(args.repeat):
            for i, (_, _, store_url, cluster, ports) in enumerate(stores):
                configure(root, store_url, cluster)
                times[i].append(timed_sync(root, ports))
        for i, (name, nodes, _, _, _) in enumerate(stores):
            wall, client_cpu, servers = (statistics.median(t[k] for t in times[i]) for k in range(3))
            sync_rows.append((name, nodes, wall, client_cpu, servers))
        if 3 in clusters:
            configure(root, clusters[3].url, cluster=True)
            store = FeatureStore(root)
            reader = OnlineReader(store)
            client = RedisCluster.from_url(clusters[3].url)
            rng = random.Random(7)
            ids = [rng.randint(1, args.entities) for _ in range(args.calls)]
            batches = [[{"driver_id": rng.randint(1, args.entities)} for _ in range(100)] for _ in range(50)]

            def bare_pipeline(batch):
                pipe = client.pipeline(transaction=False)
                for row in batch:
                    pipe.hmget(f"fhbench:driver_stats:{row['driver_id']}", FIELDS)
                return pipe.execute()

            sdk1, bare1 = interleaved(lambda i: reader.read(FEATURES, [{"driver_id": ids[i]}]),
                                      lambda i: client.hmget(f"fhbench:driver_stats:{ids[i]}", FIELDS), args.calls)
            calls = max(args.calls // 10, 200)
            sdk100, bare100 = interleaved(lambda i: reader.read(FEATURES, batches[i % 50]),
                                          lambda i: bare_pipeline(batches[i % 50]), calls)
            p = bench_online_reads.percentiles
            read_rows.append(("3-node cluster, batch 1", *p(sdk1), "RedisCluster.hmget", *p(bare1)))
            read_rows.append(("3-node cluster, batch 100", *p(sdk100), "RedisCluster pipeline of HMGETs",
                              *p(bare100)))
            reader.close()
            client.close()
    finally:
        for cluster in clusters.values():
            cluster.stop()
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\nFull sync (--full-refresh, warehouse read included) of {args.entities:,} entities x 3 features, "
          f"median of {args.repeat} interleaved runs, loopback, one sync process, servers on the same machine\n")
    print("| store | primaries | full sync | entities/s | vs single node | sync process CPU | servers CPU (sum) "
          "| server CPU µs/entity |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = sync_rows[0][2]
    for name, nodes, seconds, client_cpu, servers in sync_rows:
        print(f"| {name} | {nodes} | {seconds:.2f} s | {args.entities / seconds:,.0f} | {base / seconds:.2f}x | "
              f"{client_cpu:.2f} s | {servers:.2f} s | {servers / args.entities * 1e6:.2f} |")
    if read_rows:
        print(f"\nReads, 3 features, {args.calls:,} calls (batch 1) / {max(args.calls // 10, 200):,} (batch 100), "
              "featurehouse and the baseline called alternately\n")
        print("| read | featurehouse p50 | p99 | baseline (same run) | baseline p50 | p99 | p50 ratio |")
        print("|---|---:|---:|---|---:|---:|---:|")
        for name, p50, p99, other, b50, b99 in read_rows:
            print(f"| {name} | {p50:.3f} ms | {p99:.3f} ms | {other} | {b50:.3f} ms | {b99:.3f} ms | "
                  f"{p50 / b50:.2f}x |")


if __name__ == "__main__":
    main()
