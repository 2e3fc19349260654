"""Feast 0.67's ``retrieve_online_documents_v2`` (SQLite + sqlite-vec) beside featurehouse's search.

The corpus is bench_vectors.py's (its ``corpus()``: 100k Gaussian documents x 384 dims, the same
seed), without the ttl: Feast's vector search applies none, so both sides search every document.
Feast runs in its own venv, as a child process driven over a pipe; featurehouse, the raw client
and Feast take turns query by query (each side times its own call, so the pipe is not counted).

Rows: the write of the documents (Feast's ``write_to_online_store`` of a DataFrame; featurehouse's
``SQLiteBackend.write`` as ``featurehouse sync`` calls it; raw sqlite3 ``executemany``), and search
p50/p99 (top-k, batch 1, cosine asked for on both sides) beside featurehouse's statement through
the raw client. Correctness: every query's top-k from both against an exact numpy reference.

The Feast venv (Debian's Python here; the stdlib-sqlite3 probe below needs one that can load
extensions):

    /usr/bin/python3.11 -m venv .venvs/feast-0.67-debian
    .venvs/feast-0.67-debian/bin/pip install 'feast==0.67.0' 'sqlite-vec==0.1.9' 'pysqlite3-binary==0.5.4.post2'
    .venv/bin/python bench/bench_vectors_feast.py [--docs 100000] [--dims 384] [--queries 30]

Feast does not run here as shipped, and the script prints each step (a 1,000-document probe with
the venv's own sqlite3 first, then the measured child):
- Feast 0.67 loads sqlite-vec into its connection only on Python 3.10 (``sys.version_info[0:2] ==
  (3, 10)`` in feast/infra/online_stores/sqlite.py; else ``no such module: vec0``), and no Python
  3.10 here can load extensions: after the write, the child gives the store a connection from
  Feast's own ``_initialize_conn(path, enable_sqlite_vec=True)``, what Feast does on 3.10;
- Feast's KNN query uses ``LIMIT``, which sqlite-vec honours only on SQLite 3.41+ (Debian's is
  3.40.1): the measured child imports pysqlite3 (a newer SQLite) as ``sqlite3`` before Feast;
- each search copies every vector into a vec0 table it never empties, so a second search on one
  connection fails: the child rolls the connection back before each timed search (untimed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEAST_PYTHON = ROOT / ".venvs" / "feast-0.67-debian" / "bin" / "python"

SPECS = """\
entities:
  - name: doc
    join_keys: [doc_id]
    value_type: int64
sources:
  - name: doc_source
    path: data/docs.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: docs
    entities: [doc]
    source: doc_source
    schema:
      - {name: title, dtype: string}
      - {name: lang, dtype: string}
      - {name: embedding, dtype: array<float32>, vector: {dimensions: DIMS, metric: cosine}}
"""


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- the Feast side: runs in the Feast venv ---------------------------------------------------------
def feast_child(work: Path, dims: int, top_k: int, sqlite_library: str) -> None:
    """Write the corpus through Feast, then answer ``q <i>`` lines with one timed search each.

    ``sqlite_library`` "pysqlite3": Feast's ``import sqlite3`` gets pysqlite3 (a newer SQLite).
    """
    if sqlite_library == "pysqlite3":
        from pysqlite3 import dbapi2

        sys.modules["sqlite3"] = dbapi2
        sys.modules["sqlite3.dbapi2"] = dbapi2
    import sqlite3

    import numpy as np
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.infra.online_stores import sqlite as feast_sqlite
    from feast.repo_config import RepoConfig
    from feast.types import Array, Float32, String
    from feast.value_type import ValueType

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    repo = work / "feast"
    repo.mkdir()
    docs = pd.read_parquet(work / "docs.parquet")
    queries = np.load(work / "queries.npy")
    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(repo / "registry.db"),
        online_store={"type": "sqlite", "path": str(repo / "online.db"), "vector_enabled": True},
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    store = FeatureStore(config=config)
    doc = Entity(name="doc", join_keys=["doc_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="docs",
        entities=[doc],
        schema=[
            Field(name="title", dtype=String),
            Field(name="lang", dtype=String),
            Field(
                name="embedding",
                dtype=Array(Float32),
                vector_index=True,
                vector_length=dims,
                vector_search_metric="COSINE",
            ),
        ],
        source=FileSource(path=str(work / "docs.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    store.apply([doc, view])
    docs["embedding"] = [row.tolist() for row in np.stack(docs["embedding"].to_numpy())]
    started = time.perf_counter()
    store.write_to_online_store("docs", docs)  # on Feast's own connection: writes need no extension
    write_s = time.perf_counter() - started

    def search(i: int) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            answer = store.retrieve_online_documents_v2(
                features=["docs:embedding", "docs:title"],
                query=queries[i].tolist(),
                top_k=top_k,
                distance_metric="cosine",
            ).to_dict()
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"[:300], "ms": (time.perf_counter() - started) * 1000}
        ms = (time.perf_counter() - started) * 1000
        keys, distances, titles = (answer.get(c, []) for c in ("doc_id", "distance", "title"))
        return {"ms": ms, "keys": keys, "distances": distances, "titles": titles}

    # as shipped: a search on Feast's own connection; then, on a connection with sqlite-vec loaded,
    # two searches in a row
    unpatched = search(0)
    online = store._get_provider().online_store
    patched = False
    if sys.version_info[0:2] != (3, 10):  # Feast loads sqlite-vec on 3.10 only; do what it does there
        online._conn.close()
        online._conn = feast_sqlite._initialize_conn(str(repo / "online.db"), enable_sqlite_vec=True)
        patched = True
    shipped = [search(0), search(1)]
    say(
        {
            "ready": True,
            "write_s": write_s,
            "patched": patched,
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "shipped": shipped,
            "unpatched": unpatched,
        }
    )
    for line in sys.stdin:
        # each search copies every vector into a vec0 table it never empties, so a second search on
        # the same connection fails (UNIQUE constraint); roll that uncommitted copy back first (untimed),
        # which leaves the connection as a new process finds it
        online._conn.rollback()
        say(search(int(line.split()[1])))


class Feast:
    """The Feast child process: write on start, then one search per ``search(i)``."""

    def __init__(self, work: Path, dims: int, top_k: int, sqlite_library: str) -> None:
        command = [str(FEAST_PYTHON), __file__, "--feast-child", str(work), "--dims", str(dims), "--top-k", str(top_k)]
        self.proc = subprocess.Popen(
            [*command, "--feast-sqlite", sqlite_library],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the Feast child exited ({self.proc.wait()}); its stderr is above")
            if line.startswith("{"):
                return dict(json.loads(line))

    def search(self, i: int) -> dict[str, Any]:
        """Feast's answer to query ``i``: ms, keys, distances (or error)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"q {i}\n")
        return self._read()

    def close(self) -> None:
        """End the child."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---- the featurehouse side: runs in the project's venv ----------------------------------------------
def reference(vectors: Any, query: Any, top_k: int, metric: str) -> tuple[list[int], list[float]]:
    """Exact top-k by (distance, key) in float64: cosine distance or l2."""
    import numpy as np

    v = vectors.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "cosine":
        distance = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    else:
        distance = np.sqrt(((v - q) ** 2).sum(axis=1))
    order = np.lexsort((np.arange(len(v)), distance))[:top_k]
    return order.tolist(), distance[order].tolist()


def main() -> None:
    """Parse the flags; run the Feast child (``--feast-child``) or the whole bench."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--feast-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--feast-sqlite", choices=("stdlib", "pysqlite3"), default="pysqlite3", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.feast_child:
        feast_child(args.feast_child, args.dims, args.top_k, args.feast_sqlite)
        return
    if not FEAST_PYTHON.exists():
        sys.exit(f"no Feast venv at {FEAST_PYTHON.parent.parent}; build it as this script's docstring says")
    run(args)


def run(args: Any) -> None:
    """The bench: writes, interleaved searches, correctness against numpy, the table."""
    import os
    import sqlite3

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_vectors import corpus

    from featurehouse import FeatureStore
    from featurehouse.sync.base import Connections
    from featurehouse.sync.layout import SyncState, ViewLayout
    from featurehouse.sync.sqlite import SQLiteBackend
    from featurehouse.sync.sqlite_vectors import connection, encode_vectors, search_sql

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="h10-bench-vectors-feast-"))
    feast = None
    try:
        (work / "feature_specs").mkdir()
        (work / "feature_specs" / "docs.yml").write_text(SPECS.replace("DIMS", str(args.dims)))
        (work / "featurehouse.yml").write_text("project: bench\nonline_store: {type: sqlite, path: online.db}\n")
        now = datetime.now(timezone.utc)
        table, vectors = corpus(args.docs, args.dims, now)
        rng = np.random.default_rng(11)
        queries = [rng.standard_normal(args.dims, dtype=np.float32) for _ in range(args.queries)]
        # event times within the last day: no side may drop a document as stale
        fresh = pa.array(np.full(args.docs, np.datetime64(now.replace(tzinfo=None) - timedelta(hours=1), "us")))
        table = table.set_column(1, "event_timestamp", fresh)
        pq.write_table(table.drop_columns(["created_timestamp"]), work / "docs.parquet")
        np.save(work / "queries.npy", np.stack(queries))

        # ---- Feast as shipped: this Python's own sqlite3 (a 1,000-document copy suffices) -------------
        (work / "probe").mkdir()
        pq.write_table(table.slice(0, 1000).drop_columns(["created_timestamp"]), work / "probe" / "docs.parquet")
        np.save(work / "probe" / "queries.npy", np.stack(queries))
        probe = Feast(work / "probe", args.dims, args.top_k, "stdlib")
        probe.close()

        # ---- writes ---------------------------------------------------------------------------------
        started = time.perf_counter()
        feast = Feast(work, args.dims, args.top_k, "pysqlite3")
        feast_total = time.perf_counter() - started
        feast_write = float(feast.hello["write_s"])

        store = FeatureStore(work)
        layout = ViewLayout.of(store.repo, store.repo.feature_views["docs"])
        backend = SQLiteBackend(work / "online.db")
        state = SyncState("docs", layout.signature, now, args.docs, np.zeros(args.docs, np.uint64))
        started = time.perf_counter()
        backend.write(layout, table, None, state, lambda done: None)
        fh_write = time.perf_counter() - started
        backend.close()

        started = time.perf_counter()
        raw = sqlite3.connect(work / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute(
            "CREATE TABLE docs (doc_id INTEGER NOT NULL PRIMARY KEY, event_timestamp TEXT NOT NULL, "
            "created_timestamp TEXT, title TEXT, lang TEXT, embedding BLOB) WITHOUT ROWID"
        )
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO docs VALUES (?, ?, NULL, ?, ?, ?)",
            zip(
                table.column("doc_id").to_pylist(),
                table.column("event_timestamp").cast(pa.string()).to_pylist(),
                table.column("title").to_pylist(),
                table.column("lang").to_pylist(),
                encode_vectors(table.column("embedding")),
            ),
        )
        raw.execute("COMMIT")
        raw.close()
        raw_write = time.perf_counter() - started

        # ---- searches, interleaved query by query -----------------------------------------------------
        con = connection(work / "online.db", Connections())
        sql = search_sql("docs", ("doc_id",), "embedding", "cosine", ("title",), (), False)
        times: dict[str, list[float]] = {"featurehouse": [], "feast": [], "raw": []}
        answers: dict[str, list[Any]] = {"featurehouse": [], "feast": []}
        feast_errors: list[str] = []
        warm = [(0, queries[0])]  # one untimed call per side warms statement and page caches
        for rnd, batch in enumerate((warm, list(enumerate(queries)))):
            for i, q in batch:
                started = time.perf_counter()
                fh = store.retrieve_online_documents(["docs:title"], q, top_k=args.top_k).to_dict()
                fh_ms = (time.perf_counter() - started) * 1000
                fe = feast.search(i)
                started = time.perf_counter()
                con.execute(sql, ["docs", q.tobytes(), args.top_k]).fetchall()
                raw_ms = (time.perf_counter() - started) * 1000
                if rnd == 0:
                    continue
                times["featurehouse"].append(fh_ms)
                times["raw"].append(raw_ms)
                times["feast"].append(fe["ms"])
                answers["featurehouse"].append((fh["doc_id"], fh["distance"]))
                if "error" in fe:
                    feast_errors.append(fe["error"])
                answers["feast"].append(fe)

        # ---- correctness against numpy --------------------------------------------------------------
        fh_exact, worst_fh = 0, 0.0
        feast_cos = feast_l2_keys = feast_l2_order = rows_intact = title_distance_ok = ascending = same_docs = 0
        for i, q in enumerate(queries):
            ref_keys, ref_dist = reference(vectors, q, args.top_k, "cosine")
            l2_keys, _l2_dist = reference(vectors, q, args.top_k, "l2")
            fh_keys, fh_dist = answers["featurehouse"][i]
            fe = answers["feast"][i]
            fh_exact += list(fh_keys) == ref_keys
            worst_fh = max([worst_fh, *(abs(a - b) for a, b in zip(fh_dist, ref_dist))])
            keys, distances, titles = fe.get("keys", []), fe.get("distances", []), fe.get("titles", [])
            feast_cos += len(set(keys) & set(fh_keys))
            feast_l2_keys += len(set(keys) & set(l2_keys))
            feast_l2_order += list(keys) == l2_keys
            rows_intact += sum(t == f"document {key}" for key, t in zip(keys, titles))
            same_docs += sorted(f"document {key}" for key in keys) == sorted(titles)
            true_l2 = {int(key): d for key, d in zip(*reference(vectors, q, len(vectors), "l2"))}
            title_distance_ok += sum(
                abs(d - true_l2[int(t.split()[1])]) < 1e-3 * max(1.0, d) for t, d in zip(titles, distances)
            )
            ascending += all(x <= y for x, y in itertools.pairwise(distances))
        feast.close()
        feast_hello, patched = feast.hello, feast.hello["patched"]
        feast = None
        n, k = len(queries), args.top_k

        def ms(side: str, q: float | None) -> float:
            return statistics.median(times[side]) if q is None else percentile(times[side], q)

        print(f"\n{args.docs:,} documents x {args.dims} dimensions, top-{k}, batch 1, cosine asked for; {n} queries")
        print(f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end {os.getloadavg()[0]:.2f}\n")
        print("| measurement | featurehouse | Feast 0.67 | raw client | featurehouse / raw | Feast / raw |")
        print("|---|---:|---:|---:|---:|---:|")
        print(
            f"| write {args.docs:,} documents (s) | {fh_write:.2f} | {feast_write:.2f} | {raw_write:.2f} "
            f"| {fh_write / raw_write:.2f}x | {feast_write / raw_write:.2f}x |"
        )
        for label, q in (("p50", None), ("p99", 0.99)):
            f, e, r = ms("featurehouse", q), ms("feast", q), ms("raw", q)
            print(f"| search {label} (ms) | {f:.1f} | {e:.1f} | {r:.1f} | {f / r:.2f}x | {e / r:.2f}x |")
        print()
        for name, hello in (("stdlib sqlite3", probe.hello), ("pysqlite3", feast_hello)):
            first, second = hello["shipped"]
            print(f"- Feast, Python {hello['python']} + {name} (SQLite {hello['sqlite']}):")
            print(f"  on its own connection: {hello['unpatched'].get('error', 'ok')};")
            print(f"  with sqlite-vec loaded, first search: {first.get('error', 'ok')};")
            print(f"  a second on the same connection: {second.get('error', 'ok')}.")
        print(f"- Feast child (pysqlite3) start + apply + write: {feast_total:.1f} s; timed searches each start")
        print("  from a rolled-back connection (see feast_child), as a new process would.")
        if patched:
            print(
                "  sqlite-vec loaded with Feast's own _initialize_conn(..., enable_sqlite_vec=True) (Feast: 3.10 only)."
            )
        print(
            f"- featurehouse top-{k} == exact cosine reference (numpy, float64, ties by key): {fh_exact}/{n} queries;"
        )
        print(f"  largest distance difference {worst_fh:.2e}.")
        rows = n * k
        print(f"- Feast errors: {len(feast_errors)}/{n}" + (f" (first: {feast_errors[0]})" if feast_errors else ""))
        print(f"- Feast doc_id column vs featurehouse's exact cosine top-{k}: {feast_cos / rows:.1%} of keys shared;")
        print(f"  vs the exact L2 top-{k}: {feast_l2_keys / rows:.1%} shared, same order {feast_l2_order}/{n} queries")
        print("  (the vec0 table Feast builds has sqlite-vec's default metric, L2; distance_metric is not used).")
        print(f"- Feast rows whose title is their doc_id's: {rows_intact}/{rows}; rows whose distance is the exact L2")
        print(f"  distance of the document their title names: {title_distance_ok}/{rows};")
        print(f"  answers whose titles name the same documents as their doc_id column: {same_docs}/{n};")
        print(f"  answers with the distance column ascending: {ascending}/{n}.")
    finally:
        if feast is not None:
            feast.proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
