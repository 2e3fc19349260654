"""Training sets on Spark (local session): get_historical_features vs a hand-written Spark SQL
point-in-time query with the same rules, history doubled, and DuckDB's time beside it.

    .venv/bin/python bench/bench_spark.py                         # 20k spine x 200k rows, 2k drivers
    .venv/bin/python bench/bench_spark.py --spine 1000000 --rows 10000000 --entities 100000

Options: --repeat N (default 3; medians), --partitions (spark.sql.shuffle.partitions, default 8).
One feature view (2 features, ttl 1 day, created times with 1% NULL and event-time ties);
10% of the spine's drivers have no rows. Both Spark variants upload the same Arrow spine
(createDataFrame) and fetch the answer as Arrow (toArrow); the hand-written query is the
usual Spark idiom: union spine and history, one window per driver ordered by time with
`last(named_struct(...), true)` carrying the latest row forward, the ttl checked on the
carried event time. The featurehouse time includes its whole SDK call (spine checks,
rendering from the cache, upload, query, typing the result).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
# the driver holds the uploaded spine and the fetched answer (tests/support/spark.py reads it)
os.environ.setdefault("FEATUREHOUSE_SPARK_DRIVER_MEMORY", "6g")

TTL_SECONDS = 86400
SPECS = """\
entities:
  - {{name: driver, join_keys: [driver_id], value_type: int64}}
sources:
  - name: stats
    table: {prefix}raw_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: stats
    entities: [driver]
    source: stats
    ttl: 1d
    schema:
      - {{name: conv_rate, dtype: float64}}
      - {{name: trips, dtype: int64}}
"""

HAND_WRITTEN = """
with u as (
    select driver_id, event_timestamp as t, 0 as kind, cast(null as bigint) as row_id,
           named_struct('e', event_timestamp, 'c', created_timestamp, 'conv_rate', conv_rate, 'trips', trips) as f
    from {features}
    where event_timestamp is not null and driver_id is not null
    union all
    select driver_id, cast(event_timestamp as timestamp), 1, row_id, null
    from __bench_spine
), w as (
    select kind, row_id, t,
           last(f, true) over (partition by driver_id
                               order by t, kind, f.c nulls first, f.conv_rate nulls last, f.trips nulls last
                               rows between unbounded preceding and current row) as best
    from u
)
select row_id,
       case when best.e >= t - interval {ttl} seconds then best.conv_rate end as conv_rate,
       case when best.e >= t - interval {ttl} seconds then best.trips end as trips
from w
where kind = 1
order by row_id
"""


def generate(rows: int, spine_rows: int, entities: int, seed: int = 7):
    """(history, spine) as Arrow tables, naive UTC times."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    hours = 30 * 24
    event = start + rng.integers(0, hours, rows).astype("timedelta64[h]").astype("timedelta64[us]")
    created = event + rng.integers(0, 2000, rows).astype("timedelta64[m]").astype("timedelta64[us]")
    history = pa.table(
        {
            "driver_id": pa.array(rng.integers(0, entities, rows), pa.int64()),
            "event_timestamp": pa.array(event, pa.timestamp("us")),
            "created_timestamp": pa.array(created, pa.timestamp("us"), mask=rng.random(rows) < 0.01),
            "conv_rate": pa.array(rng.random(rows), pa.float64(), mask=rng.random(rows) < 0.01),
            "trips": pa.array(rng.integers(0, 100, rows), pa.int64()),
        }
    )
    spine_times = start + rng.integers(0, hours * 3600, spine_rows).astype("timedelta64[s]").astype("timedelta64[us]")
    spine = pa.table(
        {
            "driver_id": pa.array(rng.integers(0, int(entities * 1.1), spine_rows), pa.int64()),
            "event_timestamp": pa.array(spine_times, pa.timestamp("us")),
            "label": pa.array(rng.integers(0, 2, spine_rows), pa.int64()),
        }
    )
    return history, spine


def build_repo(root: Path, engine: str, schema: str) -> None:
    """A one-view repo compiled and built for ``engine`` (empty source; fv_stats is refilled)."""
    from support import spark
    from support.repos import run_dbt, write_repo

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    prefix = f"{schema}." if engine == "spark" else ""
    write_repo(root, {"specs.yml": SPECS.format(prefix=prefix)})
    columns = "driver_id bigint, event_timestamp timestamp, created timestamp, conv_rate double, trips bigint"
    if engine == "spark":
        with (root / "profiles.yml").open("a") as profiles:
            profiles.write(spark.spark_output(schema))
        spark.run_sql(f"create schema if not exists `{schema}`", f"create table `{schema}`.raw_stats ({columns})")
    else:
        import duckdb

        con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
        con.execute(f"create table raw_stats ({columns})")
        con.close()
    repo = load_repo(root)
    compiler.write(
        root / repo.config.models_dir, compiler.compile_repo(repo, "spark" if engine == "spark" else "duckdb")
    )
    run_dbt(root, "run", target="spark" if engine == "spark" else "dev")


def fill(root: Path, engine: str, schema: str, history) -> None:
    """Make fv_stats hold exactly ``history``."""
    if engine == "spark":
        from support import spark

        spark.replace_table(f"`{schema}`.`fv_stats`", history)
        return
    import duckdb
    from support.repos import reset_dbt_duckdb

    reset_dbt_duckdb()
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.register("history", history)
    con.execute("delete from fv_stats")
    con.execute("insert into fv_stats select * from history")
    con.close()


def featurehouse_time(root: Path, target: str, spine) -> tuple[float, object]:
    from featurehouse import FeatureStore

    store = FeatureStore(root, target=target)
    started = time.perf_counter()
    result = store.get_historical_features(entity_df=spine, features=["stats:conv_rate", "stats:trips"]).to_arrow()
    return time.perf_counter() - started, result


def hand_written_time(schema: str, spine) -> tuple[float, object]:
    import numpy as np
    import pyarrow as pa
    from support import spark

    session = spark.session()
    started = time.perf_counter()
    numbered = spine.append_column("row_id", pa.array(np.arange(spine.num_rows, dtype=np.int64)))
    numbered = numbered.set_column(1, "event_timestamp", numbered.column(1).cast(pa.timestamp("us", tz="UTC")))
    session.createDataFrame(numbered).createOrReplaceTempView("__bench_spine")
    sql = HAND_WRITTEN.format(features=f"`{schema}`.`fv_stats`", ttl=TTL_SECONDS)
    result = session.sql(sql).toArrow()
    session.catalog.dropTempView("__bench_spine")
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spine", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()

    import tempfile
    import uuid

    from support import spark

    spark.session().conf.set("spark.sql.shuffle.partitions", str(args.partitions))
    schema = f"fh_bench_spark_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="fh_bench_spark_"))
    history, spine = generate(args.rows, args.spine, args.entities)
    doubled, _ = generate(args.rows * 2, args.spine, args.entities)
    build_repo(work / "spark", "spark", schema)
    build_repo(work / "duck", "duckdb", "main")

    times: dict[str, list[float]] = {"featurehouse": [], "hand": [], "featurehouse_2x": [], "duckdb": []}
    try:
        fill(work / "spark", "spark", schema, history)
        fill(work / "duck", "duckdb", "main", history)
        featurehouse_time(work / "spark", "spark", spine)  # warm: the rendered SQL is cached after this
        featurehouse_time(work / "duck", "dev", spine)
        hand_written_time(schema, spine)
        for _ in range(args.repeat):
            seconds, ours = featurehouse_time(work / "spark", "spark", spine)
            times["featurehouse"].append(seconds)
            seconds, theirs = hand_written_time(schema, spine)
            times["hand"].append(seconds)
            seconds, duck = featurehouse_time(work / "duck", "dev", spine)
            times["duckdb"].append(seconds)
        same = ours.select(["conv_rate", "trips"]).equals(theirs.select(["conv_rate", "trips"]))
        same_duck = ours.equals(duck)
        fill(work / "spark", "spark", schema, doubled)
        featurehouse_time(work / "spark", "spark", spine)
        for _ in range(args.repeat):
            times["featurehouse_2x"].append(featurehouse_time(work / "spark", "spark", spine)[0])
    finally:
        spark.run_sql(f"drop schema if exists `{schema}` cascade")

    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"spine {args.spine:,} x history {args.rows:,} rows, {args.entities:,} drivers, "
        f"{args.partitions} shuffle partitions, median of {args.repeat}"
    )
    print("| variant | median s | ratio |")
    print("|---|---|---|")
    print(f"| hand-written Spark SQL (baseline) | {median['hand']:.2f} | 1.00 |")
    print(f"| featurehouse on Spark | {median['featurehouse']:.2f} | {median['featurehouse'] / median['hand']:.2f} |")
    print(
        f"| featurehouse on Spark, history x2 | {median['featurehouse_2x']:.2f} | "
        f"{median['featurehouse_2x'] / median['featurehouse']:.2f} (vs 1x) |"
    )
    print(f"| featurehouse on DuckDB (same data) | {median['duckdb']:.2f} | {median['duckdb'] / median['hand']:.2f} |")
    print(f"same features as the hand-written query: {same}; same training set as DuckDB: {same_duck}")


if __name__ == "__main__":
    main()
