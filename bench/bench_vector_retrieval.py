"""Offline retrieval benchmark: get_historical_documents vs a hand-written DuckDB query.

1,000 timestamped queries against 100k documents with history (updates and deletions over
30 days), top-10 by cosine distance, on DuckDB. The hand-written query applies the same
rules (latest version at or before t within ttl, full ties by the greatest feature tuple,
deleted and zero documents skipped, ties in distance by key) in one statement over the same
fv_ table, on its own read-only connection. Both are warm (the SDK's rendered SQL is cached
on disk after its first call); runs are interleaved and the table shows medians, because
the machine is shared.

    .venv/bin/python bench/bench_vector_retrieval.py                 # 1,000 x 100k, 64 dims
    .venv/bin/python bench/bench_vector_retrieval.py --dims 384      # the online benches' width
    .venv/bin/python bench/bench_vector_retrieval.py --documents 10000 --queries 100 --runs 1

The data is generated inside DuckDB (range() and hash()) into a throwaway feature repo under
bench/.data/, built once with `featurehouse compile` and `dbt run`, reused while its
parameters stay the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

BASE_TIME = "2026-01-01 00:00:00"
DAYS = 30
TTL_DAYS = 20


def specs_yaml(dims: int) -> str:
    return f"""\
entities:
  - {{name: doc, join_keys: [doc_id], value_type: int64}}
sources:
  - name: raw_docs
    table: main.raw_docs
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: docs
    entities: [doc]
    source: raw_docs
    ttl: {TTL_DAYS}d
    schema:
      - {{name: title, dtype: string}}
      - {{name: embedding, dtype: array<float32>, vector: {{dimensions: {dims}, metric: cosine}}}}
"""


def build(root: Path, documents: int, dims: int) -> None:
    """The repo and its warehouse: every document has 1-3 versions, ~5% end deleted."""
    import duckdb

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo
    from support.repos import reset_dbt_duckdb, run_dbt, write_repo

    stamp = root / "params.json"
    params = {"documents": documents, "dims": dims, "version": 1}
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return
    shutil.rmtree(root, ignore_errors=True)
    write_repo(root, {"docs.yml": specs_yaml(dims)})
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.execute(
        f"""
        create table raw_docs as
        with versions as (
            select d as doc_id, v
            from range({documents}) r(d), range(3) s(v)
            where v < 1 + hash(d) % 3
        )
        select
            doc_id,
            timestamp '{BASE_TIME}' + to_seconds(cast(hash(doc_id, v, 'e') % ({DAYS} * 86400) as bigint)) as event_timestamp,
            timestamp '{BASE_TIME}' + to_seconds(cast(hash(doc_id, v, 'e') % ({DAYS} * 86400) as bigint) + 60) as created,
            'doc ' || doc_id || ' v' || v as title,
            case when v > 0 and hash(doc_id, v, 'x') % 20 = 0 then null
                 else list_transform(range({dims}), lambda i: cast(hash(doc_id, v, i) % 2001 as float) / 1000 - 1)
            end as embedding
        from versions
        """
    ).fetchall()
    con.close()
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    run_dbt(root, "run")
    reset_dbt_duckdb()  # dbt-duckdb keeps the file open read-write in this process
    stamp.write_text(json.dumps(params))


def spine(queries: int, dims: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    base = np.datetime64(BASE_TIME, "us")
    times = base + rng.integers(0, DAYS * 86400 * 10**6, queries).astype("timedelta64[us]")
    vectors = rng.uniform(-1, 1, (queries, dims)).astype(np.float32)
    return pa.table(
        {
            "query_id": pa.array(np.arange(queries)),
            "event_timestamp": pa.array(times, pa.timestamp("us")),
            "query": pa.array(list(vectors), pa.list_(pa.float32())),
        }
    )


_VERSIONS = """
with versions as (
    select doc_id, event_timestamp as e, title, cast(embedding as FLOAT[{dims}]) as v
    from main.fv_docs
    where event_timestamp is not null and doc_id is not null
    qualify row_number() over (
        partition by doc_id, event_timestamp
        order by created_timestamp desc nulls last, title desc nulls first, embedding desc nulls first) = 1
), live as (
    select * from (
        select *, coalesce(lead(e) over (partition by doc_id order by e), 'infinity'::timestamp) as until
        from versions
    )
    where v is not null and list_dot_product(v, v) > 0
), queries as (
    select query_id, event_timestamp, cast(query as FLOAT[{dims}]) as qv from spine
), pairs as (
    select q.query_id, l.doc_id, l.title, array_cosine_distance(l.v, q.qv) as d
    from queries q {join}
)
"""
_CONDITION = "l.e <= q.event_timestamp and q.event_timestamp < l.until and l.e >= q.event_timestamp - interval {ttl} day"
# what an expert writes after measuring: the cross product filtered (no IEJoin), top-k by min_by
HAND_WRITTEN = _VERSIONS.replace("{join}", ", live l where case when " + _CONDITION + " then true else false end") + """
select query_id, rank, hit.doc_id, hit.title, hit.d as distance
from (
    select query_id, unnest(generate_series(1, len(hits))) as rank, unnest(hits) as hit
    from (select query_id, min_by({{'doc_id': doc_id, 'title': title, 'd': d}}, {{'d': d, 'k': doc_id}}, 10) as hits
          from pairs group by query_id)
)
order by query_id, rank
"""
# the first query one writes: a range join and row_number()
HAND_WRITTEN_NAIVE = _VERSIONS.replace("{join}", "join live l on " + _CONDITION) + """
select query_id, row_number() over (partition by query_id order by d, doc_id) as rank, doc_id, title, d as distance
from pairs
qualify rank <= 10
order by query_id, rank
"""


def run_hand_written(root: Path, table, dims: int, sql: str = HAND_WRITTEN):
    import duckdb

    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True)
    try:
        con.register("spine", table)
        return con.sql(sql.format(dims=dims, ttl=TTL_DAYS)).to_arrow_table()
    finally:
        con.close()


def run_sdk(root: Path, table):
    from featurehouse.sdk.store import FeatureStore

    return FeatureStore(root).get_historical_documents(table, ["docs:title"], top_k=10).to_arrow()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--naive", action="store_true", help="also time the first query one writes (slow)")
    args = parser.parse_args()
    root = HERE / ".data" / "vector_retrieval"
    started = time.perf_counter()
    build(root, args.documents, args.dims)
    versions = _count(root)
    print(f"built in {time.perf_counter() - started:.1f} s: {args.documents} documents, {versions} versions")
    table = spine(args.queries, args.dims)
    run_sdk(root, table.slice(0, 1))  # renders the macro with dbt once; later calls read the cache
    variants = {"hand": lambda: run_hand_written(root, table, args.dims), "sdk": lambda: run_sdk(root, table)}
    if args.naive:
        variants["naive"] = lambda: run_hand_written(root, table, args.dims, HAND_WRITTEN_NAIVE)
    times: dict[str, list[float]] = {name: [] for name in variants}
    results = {}
    for _ in range(args.runs):
        for name, run in variants.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    keys = {
        name: [(r["query_id"], r["doc_id"]) for r in result.select(["query_id", "doc_id"]).to_pylist()]
        for name, result in results.items()
    }
    assert all(k == keys["hand"] for k in keys.values()), "the SDK and the hand-written queries disagree"
    sdk_result = results["sdk"]
    hand, sdk = statistics.median(times["hand"]), statistics.median(times["sdk"])
    print()
    print(f"| retrieval ({args.queries} queries x {args.documents} documents, {args.dims} dims, top-10) | median s | ratio |")
    print("|---|---:|---:|")
    print(f"| hand-written DuckDB query | {hand:.2f} | 1.00 |")
    if args.naive:
        naive = statistics.median(times["naive"])
        print(f"| hand-written, range join + row_number() | {naive:.2f} | {naive / hand:.2f} |")
    print(f"| get_historical_documents | {sdk:.2f} | {sdk / hand:.2f} |")
    print(f"\n{len(sdk_result)} hits; total {time.perf_counter() - started:.0f} s")


def _count(root: Path) -> int:
    import duckdb

    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True)
    try:
        row = con.execute("select count(*) from main.fv_docs").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


if __name__ == "__main__":
    main()
