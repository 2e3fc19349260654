"""Benchmark online vector search: 100k documents x 384 dimensions, top-10, one query at a time.

Rows (p50 / p99 over ``--queries`` random queries, cosine):

- SQLite search: ``FeatureStore.retrieve_online_documents`` (request checks, the sqlite-vec
  scan, the response) beside the same SQL statement through the raw client (pysqlite3 with
  sqlite-vec loaded, ``execute(...).fetchall()``); without filters, and with the ttl and a
  ``where`` filter;
- a vec0 virtual table's KNN query on the same data (the alternative decision 0017 measured);
- sync: the SQLite store's write of the 100k embeddings (``SQLiteBackend.write``, as
  ``featurehouse sync`` calls it: checks, encoding, one transaction, state) beside the raw
  client writing the same rows (sqlite3 ``executemany`` of the same BLOBs, one transaction),
  and the vec0 table's insert.

Feast 0.67's ``retrieve_online_documents_v2`` (sqlite-vec) on this corpus: bench/bench_vectors_feast.py
(it imports ``corpus()`` from here and runs Feast in its own venv).

    .venv/bin/python bench/bench_vectors.py [--docs 100000] [--dims 384] [--queries 30]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent

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
    ttl: 3d
    schema:
      - {name: title, dtype: string}
      - {name: lang, dtype: string}
      - {name: embedding, dtype: array<float32>, vector: {dimensions: DIMS, metric: cosine}}
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm: statement caches, page cache
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def corpus(n: int, dims: int, now: datetime) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dims), dtype=np.float32)
    ages = rng.uniform(0, 5 * 86400, n).astype("int64")  # ttl 3d: about 40% expired
    events = np.datetime64(now.replace(tzinfo=None), "us") - ages.astype("timedelta64[s]")
    offsets = pa.array(np.arange(0, (n + 1) * dims, dims, dtype=np.int32))
    table = pa.table(
        {
            "doc_id": pa.array(np.arange(n, dtype=np.int64)),
            "event_timestamp": pa.array(events, pa.timestamp("us")),
            "created_timestamp": pa.nulls(n, pa.timestamp("us")),
            "title": pa.array([f"document {i}" for i in range(n)]),
            "lang": pa.array(np.where(rng.random(n) < 0.5, "en", "pt")),
            "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1))),
        }
    )
    return table, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()

    from featurehouse import FeatureStore
    from featurehouse.sync.base import Connections
    from featurehouse.sync.layout import SyncState, ViewLayout
    from featurehouse.sync.sqlite import SQLiteBackend
    from featurehouse.sync.sqlite_vectors import connection, encode_vectors, search_sql

    work = Path(tempfile.mkdtemp(prefix="fh-bench-vectors-"))
    try:
        (work / "feature_specs").mkdir()
        (work / "feature_specs" / "docs.yml").write_text(SPECS.replace("DIMS", str(args.dims)))
        (work / "featurehouse.yml").write_text("project: bench\nonline_store: {type: sqlite, path: online.db}\n")
        now = datetime.now(timezone.utc)
        table, _ = corpus(args.docs, args.dims, now)
        store = FeatureStore(work)
        layout = ViewLayout.of(store.repo, store.repo.feature_views["docs"])
        rows: list[tuple[str, str, float, float, str]] = []

        # ---- sync: featurehouse's store write vs the raw client's --------------------------------------
        backend = SQLiteBackend(work / "online.db")
        state = SyncState("docs", layout.signature, now, args.docs, np.zeros(args.docs, np.uint64))
        started = time.perf_counter()
        backend.write(layout, table, None, state, lambda done: None)
        fh_sync = time.perf_counter() - started
        backend.close()

        raw_path = work / "raw.db"
        started = time.perf_counter()
        raw = sqlite3.connect(raw_path, isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute(
            "CREATE TABLE docs (doc_id INTEGER NOT NULL PRIMARY KEY, event_timestamp TEXT NOT NULL, "
            "created_timestamp TEXT, title TEXT, lang TEXT, embedding TEXT) WITHOUT ROWID"
        )
        stamps = table.column("event_timestamp").cast(pa.string()).to_pylist()
        blobs = encode_vectors(table.column("embedding"))
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO docs VALUES (?, ?, NULL, ?, ?, ?)",
            zip(
                table.column("doc_id").to_pylist(),
                stamps,
                table.column("title").to_pylist(),
                table.column("lang").to_pylist(),
                blobs,
            ),
        )
        raw.execute("COMMIT")
        raw.close()
        raw_sync = time.perf_counter() - started
        rows.append(
            (f"sync {args.docs:,} embeddings (s)", "sqlite", fh_sync, raw_sync, "raw sqlite3 executemany, same BLOBs")
        )

        # ---- search: featurehouse vs the same statement through the raw client ------------------------------
        rng = np.random.default_rng(11)
        queries = [rng.standard_normal(args.dims, dtype=np.float32) for _ in range(args.queries)]
        con = connection(work / "online.db", Connections())
        not_before = now - timedelta(days=3)
        stored_cutoff = not_before.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        for label, where, ttl in (("search, no filter", None, False), ("search, ttl + where", {"lang": "en"}, True)):
            sql = search_sql("docs", ("doc_id",), "embedding", "cosine", ("title",), tuple(where or ()), ttl)

            turns = (itertools.count(), itertools.count())

            def featurehouse_search(where: Any = where, turn: Any = turns[0]) -> Any:
                q = queries[next(turn) % len(queries)]
                return store.retrieve_online_documents(["docs:title"], q, top_k=args.top_k, where=where)

            def raw_search(where: Any = where, ttl: bool = ttl, sql: str = sql, turn: Any = turns[1]) -> Any:
                q = queries[next(turn) % len(queries)]
                params: list[Any] = ["docs", q.tobytes()]
                if ttl:
                    params.append(stored_cutoff)
                params += list((where or {}).values())
                return con.execute(sql, [*params, args.top_k]).fetchall()

            fh = timed(featurehouse_search, args.queries)
            rw = timed(raw_search, args.queries)
            rows.append((f"{label} p50 (ms)", "sqlite", statistics.median(fh), statistics.median(rw), "same SQL, raw"))
            rows.append((f"{label} p99 (ms)", "sqlite", percentile(fh, 0.99), percentile(rw, 0.99), ""))

        # ---- the alternative: a vec0 virtual table (KNN) ----------------------------------------------------
        vec0_insert, vec0_p50 = vec0_timings(work, table, blobs, queries, args)
        rows.append((f"vec0 insert {args.docs:,} (s)", "sqlite vec0", vec0_insert, raw_sync, "vs raw table insert"))
        rows.append(("vec0 KNN, lang filter p50 (ms)", "sqlite vec0", vec0_p50, float("nan"), "not used: see 0017"))

        # ---- Postgres + pgvector: the same corpus and queries (bench_vectors_postgres.py, its own server) ----
        from bench_vectors_postgres import postgres_rows

        rows += postgres_rows(table, queries, args.docs, args.dims, args.top_k, now)

        print(f"\n{args.docs:,} documents x {args.dims} dimensions, top-{args.top_k}, batch 1, cosine\n")
        print("| measurement | store | featurehouse | raw client | ratio | baseline |")
        print("|---|---|---|---|---|---|")
        for name, kind, ours, theirs, note in rows:
            ratio = f"{ours / theirs:.2f}x" if theirs == theirs and theirs > 0 else "-"
            shown = "-" if theirs != theirs else f"{theirs:.3f}"
            print(f"| {name} | {kind} | {ours:.3f} | {shown} | {ratio} | {note} |")
        print()
        print(feast_note())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def vec0_timings(work: Path, table: pa.Table, blobs: list[Any], queries: list[np.ndarray], args: Any) -> tuple:
    """Insert time of a vec0 table (embedding + lang metadata) and its KNN p50 with a lang filter."""
    import sqlite_vec

    from featurehouse.sync.sqlite_vectors import sqlite_module

    sqlite = sqlite_module()
    con = sqlite.connect(str(work / "vec0.db"), isolation_level=None)
    con.enable_load_extension(True)
    sqlite_vec.load(con)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        f"CREATE VIRTUAL TABLE docs USING vec0(doc_id INTEGER PRIMARY KEY, "
        f"embedding float[{args.dims}] distance_metric=cosine, lang text, event_timestamp text)"
    )
    stamps = table.column("event_timestamp").cast(pa.string()).to_pylist()
    started = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO docs(doc_id, embedding, lang, event_timestamp) VALUES (?, ?, ?, ?)",
        zip(table.column("doc_id").to_pylist(), blobs, table.column("lang").to_pylist(), stamps),
    )
    con.execute("COMMIT")
    insert = time.perf_counter() - started
    i = iter(range(10**9))

    def knn() -> Any:
        q = queries[next(i) % len(queries)]
        return con.execute(
            "SELECT doc_id, distance FROM docs WHERE embedding MATCH ? AND k = ? AND lang = 'en'",
            (q.tobytes(), args.top_k),
        ).fetchall()

    p50 = statistics.median(timed(knn, args.queries))
    con.close()
    return insert, p50


def feast_note() -> str:
    return (
        "Feast 0.67 (retrieve_online_documents_v2, sqlite-vec) on this corpus: "
        ".venv/bin/python bench/bench_vectors_feast.py (docs/benchmarks.md, 'Feast 0.67 on the same data')."
    )


if __name__ == "__main__":
    main()
