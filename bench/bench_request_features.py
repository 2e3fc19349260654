"""Request-time features online: what 5 expressions add to a plain online read, and how the
in-process evaluator compares with an embedded engine (DuckDB) running the same SQL.

    .venv/bin/python bench/bench_request_features.py [--calls 2000]

Builds a small repo (DuckDB warehouse, SQLite online store, 100 drivers), then measures, at batch 1
and batch 100, the p50 of: the plain read of the features the expressions use; the same read with
5 request-time features (closures compiled from the sqlglot tree, the shipped path); the 5 features
alone on already-read values, by the closures and by DuckDB over an Arrow table of the inputs.
Ratios are against the plain read measured in the same run (docs/decisions/0024).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.online import SPECS, pairs_rows, rebuild, sqlite_store, stats_rows, utc_hour, write_data  # noqa: E402
from support.repos import write_repo  # noqa: E402

REQUEST_SPECS = """\
request_views:
  - name: ride
    request:
      - {name: fare, dtype: float64}
      - {name: passengers, dtype: int64}
      - {name: city, dtype: string}
    schema:
      - {name: fare_per_trip, dtype: float64, expression: "fare / nullif(stats__trips, 0)"}
      - {name: weighted, dtype: float64, expression: "coalesce(stats__conv_rate, 0) * passengers + 0.5"}
      - {name: same_city, dtype: bool, expression: "city = stats__city"}
      - {name: bucket, dtype: int64, expression: "case when passengers > 2 then passengers % 3 else -1 end"}
      - {name: busy, dtype: bool, expression: "stats__active and stats__trips between 10 and 1000"}
"""
PLAIN = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]
REQUEST = ["ride:fare_per_trip", "ride:weighted", "ride:same_city", "ride:bucket", "ride:busy"]


def p50(function, calls: int) -> float:
    """The median wall time of ``function()`` in microseconds."""
    for _ in range(min(50, calls)):
        function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    import duckdb
    import pyarrow as pa
    from sqlglot import exp

    from featurehouse.compile.request_sql import feature_sql
    from featurehouse.online import request_features
    from featurehouse.online.reader import OnlineReader
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    root = Path(tempfile.mkdtemp()) / "repo"
    now = utc_hour()
    write_repo(root, {**SPECS, "request.yml": REQUEST_SPECS}, online_store=sqlite_store())
    write_data(root, stats_rows(range(1, 101), now), pairs_rows(range(1, 101), now))
    rebuild(root)
    store = FeatureStore(root)
    sync(store)
    reader = OnlineReader(store)
    con = duckdb.connect()
    rows = ["| batch | plain read p50 (µs) | read + 5 request features p50 | added | closures alone | DuckDB alone |"]
    rows.append("|---|---|---|---|---|---|")
    for batch in (1, 100):
        entities = {"driver_id": [1 + i % 100 for i in range(batch)]}
        request = {"fare": [12.5] * batch, "passengers": [3] * batch, "city": ["Berlin"] * batch}
        plain = p50(lambda: reader.read(PLAIN, entities), args.calls)
        full = p50(lambda: reader.read(REQUEST, entities, request_data=request), args.calls)
        plan = request_features.online_plan(store.repo, REQUEST, False)
        assert plan is not None
        inner = reader.read(plan.inner, entities, True)
        closures = p50(lambda: request_features.evaluate(plan, inner, entities, request), args.calls)

        def column(node, plan=plan):
            name = node.value if node.op == "field" else f"{node.value[0]}__{node.value[1]}"
            return exp.column(name, quoted=True)

        selections = plan.plan.requests
        sql = "SELECT " + ", ".join(
            feature_sql(s.plan.feature(f), column).sql(dialect="duckdb") for s in selections for f in s.features
        ) + " FROM inputs"

        def engine(inner=inner, request=request, sql=sql):
            inputs = pa.table({**request, **{c: inner.values[c] for c in plan.ref_columns}})
            con.register("inputs", inputs)
            return con.execute(sql).fetchall()

        duck = p50(engine, max(200, args.calls // 10))
        rows.append(
            f"| {batch} | {plain:.0f} | {full:.0f} | {full - plain:.0f} µs ({full / plain:.2f}×) | {closures:.0f} | "
            f"{duck:.0f} ({duck / closures:.0f}× the closures) |"
        )
    reader.close()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
