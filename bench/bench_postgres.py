"""Training-set benchmark on Postgres: get_historical_features vs hand-written Postgres queries.

Each measurement is a whole Python process that reads the spine from the same parquet file,
uploads it, computes the training set and fetches it as a pandas DataFrame; variants run
interleaved, several times, and the table shows medians and the best run, because the
machine is shared. The hand-written queries do what a careful engineer would: the spine in
with COPY (CSV written by pyarrow), a `LEFT JOIN LATERAL (... ORDER BY ... LIMIT 1)` over
the index on (driver_id, event_timestamp), or `DISTINCT ON` over the spine x history
candidates, JIT off, the answer out with COPY ... TO STDOUT into Arrow.

    .venv/bin/python bench/bench_postgres.py            # 100k spine x 1M feature rows, 10k drivers
    .venv/bin/python bench/bench_postgres.py --large    # 1M x 10M, 100k drivers

    .venv/bin/python bench/bench_postgres.py --aggregations   # sum, count, max x 1h, 1d, 7d vs the join

Options: --repeat N (default 3), --dsn (default postgresql://postgres@127.0.0.1:5432/test),
--schema (default fh_bench_pg; dropped at the end unless --keep), --regenerate.
The data is generated inside Postgres (generate_series and hashint8, nothing row by row):
whole-hour event times over 30 days (event-time ties), created times 0-2000 minutes later
(0.1% NULL), 1% of the rows duplicated with other feature values (full ties), 1% NULL
features, ttl 24 h, 10% of the spine's drivers without rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FEATURES = [("conv", "float32"), ("acc", "float32"), ("trips", "int64")]
TTL_SECONDS = 86400
# --aggregations: 9 outputs, as bench_aggregations.py measures them on DuckDB
AGGREGATION_FUNCTIONS = ("sum", "count", "max")
WINDOWS = ("1h", "1d", "7d")
ORDER = ("event_timestamp desc, created_timestamp desc nulls last, "
         "conv desc nulls first, acc desc nulls first, trips desc nulls first")


def _qualified_order() -> str:
    return ORDER.replace("event_timestamp", "f.event_timestamp").replace("created_timestamp", "f.created_timestamp")


def lateral_sql(schema: str) -> str:
    return f"""
select s.driver_id, s.event_timestamp, r.conv, r.acc, r.trips
from __bench_spine as s
left join lateral (
    select f.conv, f.acc, f.trips from "{schema}".fv_stats as f
    where f.driver_id = s.driver_id and f.event_timestamp <= s.event_timestamp
      and f.event_timestamp >= s.event_timestamp - interval '{TTL_SECONDS} seconds'
    order by {_qualified_order()}
    limit 1
) as r on true
order by s.row_id"""


def distinct_on_sql(schema: str) -> str:
    return f"""
select s.driver_id, s.event_timestamp, r.conv, r.acc, r.trips
from __bench_spine as s
left join (
    select distinct on (s.row_id) s.row_id, f.conv, f.acc, f.trips
    from __bench_spine as s join "{schema}".fv_stats as f
      on f.driver_id = s.driver_id and f.event_timestamp <= s.event_timestamp
     and f.event_timestamp >= s.event_timestamp - interval '{TTL_SECONDS} seconds'
    order by s.row_id, {_qualified_order()}
) as r on r.row_id = s.row_id
order by s.row_id"""


# ---- data ---------------------------------------------------------------------------------------
def generate(args: argparse.Namespace, repo: Path) -> None:
    import psycopg

    schema = args.schema
    positive = "(hashint8({}) & 1099511627775)"
    statements = [
        f'drop schema if exists "{schema}" cascade',
        f'create schema "{schema}"',
        "set local jit = off",
        f"""create table "{schema}".raw_stats as
            select {positive.format('g')} % {args.entities} as driver_id,
                   timestamp '2026-01-01' + ({positive.format('g * 7')} % 720) * interval '1 hour' as event_timestamp,
                   case when g % 1000 = 0 then null
                        else timestamp '2026-01-01' + ({positive.format('g * 7')} % 720) * interval '1 hour'
                             + ({positive.format('g * 13')} % 2000) * interval '1 minute' end as created,
                   case when g % 100 = 0 then null else ({positive.format('g * 17')} % 1000) / 1000.0 end::real as conv,
                   (({positive.format('g * 19')} % 1000) / 1000.0)::real as acc,
                   case when g % 100 = 1 then null else {positive.format('g * 23')} % 100 end as trips
            from generate_series(1, {args.feature_rows // 100 * 99}) as g""",
        # full ties: the same driver, event and created time, other feature values
        f"""insert into "{schema}".raw_stats
            select driver_id, event_timestamp, created, acc, conv, trips + 1
            from "{schema}".raw_stats limit {args.feature_rows - args.feature_rows // 100 * 99}""",
    ]
    with psycopg.connect(args.dsn) as con:
        for statement in statements:
            con.execute(statement)
        spine = con.execute(f"""
            select {positive.format('g * 31')} % {args.entities * 11 // 10} as driver_id,
                   timestamp '2026-01-01' + ({positive.format('g * 37')} % (31 * 86400)) * interval '1 second'
                     as event_timestamp
            from generate_series(1, {args.spine_rows}) as g order by g""").fetchall()
    import pandas as pd

    frame = pd.DataFrame(spine, columns=["driver_id", "event_timestamp"])
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns]")
    (repo / "data").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(repo / "data" / "spine.parquet", index=False)
    write_repo(args, repo)
    subprocess.run([str(Path(sys.executable).with_name("featurehouse")), "compile"], cwd=repo, check=True)
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run([str(dbt), "run", "--profiles-dir", str(repo), "--target", "pg"], cwd=repo, check=True,
                   stdout=subprocess.DEVNULL)


def write_repo(args: argparse.Namespace, repo: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(args.dsn)
    (repo / "featurehouse.yml").write_text("project: bench_pg\nspecs: feature_specs\n")
    (repo / "feature_specs").mkdir(exist_ok=True)
    schema_lines = "\n".join(f"      - {{name: {n}, dtype: {t}}}" for n, t in FEATURES)
    aggregation_lines = "\n".join(f"      - {{column: conv, function: {f}, window: {w}}}"
                                   for w in WINDOWS for f in args.functions.split(","))
    (repo / "feature_specs" / "specs.yml").write_text(f"""entities:
  - {{name: driver, join_keys: [driver_id], value_type: int64}}
sources:
  - name: stats_source
    table: {args.schema}.raw_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: stats
    entities: [driver]
    source: stats_source
    ttl: 1d
    schema:
{schema_lines}
  - name: stats_windows
    entities: [driver]
    source: stats_source
    aggregations:
{aggregation_lines}
""")
    (repo / "dbt_project.yml").write_text(
        'name: bench_pg\nversion: "0.1.0"\nconfig-version: 2\nprofile: bench_pg\nmodel-paths: ["models"]\n'
        "target-path: target\n"
    )
    (repo / "profiles.yml").write_text(f"""bench_pg:
  target: pg
  outputs:
    pg:
      type: postgres
      host: {info.get('host', '127.0.0.1')}
      port: {info.get('port', 5432)}
      user: {info.get('user', 'postgres')}
      password: "{info.get('password', '')}"
      dbname: {info.get('dbname', 'test')}
      schema: {args.schema}
      threads: 1
""")
    link = repo / "dbt_packages" / "featurehouse"
    link.parent.mkdir(exist_ok=True)
    package = repo / "featurehouse_package"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir()
    # a copy, as `dbt deps` installs it: edits to the checkout while the bench runs change nothing
    shutil.copytree(ROOT / "macros", package / "macros")
    shutil.copy(ROOT / "dbt_project.yml", package / "dbt_project.yml")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(package.resolve())


# ---- one measured process -------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    import pandas as pd

    repo = Path(args.repo)
    spine = pd.read_parquet(repo / "data" / "spine.parquet")
    if args.child in ("sdk", "sdk-sort") or args.child.startswith("sdk-windows"):
        from featurehouse.sdk.store import FeatureStore

        store = FeatureStore(repo, target="pg")
        features = "stats_windows" if args.child.startswith("sdk-windows") else [f"stats:{n}" for n, _ in FEATURES]
        result = store.get_historical_features(spine, features).to_df()
    else:
        result = hand_written(args, spine)
    if args.save:
        result.to_parquet(args.save, index=False)
    rendering = sys.modules.get("featurehouse.dbt.rendering")
    print(len(result), "rendered-with-dbt" if getattr(rendering, "_runner", None) is not None else "cached")


def hand_written(args: argparse.Namespace, spine):
    import io

    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(spine, preserve_index=False)
    table = table.append_column("row_id", pa.array(range(table.num_rows), pa.int64()))
    table = table.set_column(1, "event_timestamp", table.column(1).cast(pa.timestamp("us")))
    sql = (lateral_sql if args.child == "lateral" else distinct_on_sql)(args.schema)
    with psycopg.connect(args.dsn) as con, con.cursor() as cur:
        cur.execute("set local jit = off")
        cur.execute("create temporary table __bench_spine (driver_id bigint, event_timestamp timestamp, row_id bigint)"
                    " on commit drop")
        with cur.copy("copy __bench_spine from stdin with (format csv)") as copy:
            for batch in table.to_batches(max_chunksize=262_144):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getbuffer())
        cur.execute("analyze __bench_spine")
        out = io.BytesIO()
        with cur.copy(f"copy ({sql}) to stdout with (format csv)") as copy:
            for block in copy:
                out.write(block)
    out.seek(0)
    names = ["driver_id", "event_timestamp", "conv", "acc", "trips"]
    types = [pa.int64(), pa.timestamp("us"), pa.float32(), pa.float32(), pa.int64()]
    result = pacsv.read_csv(out, read_options=pacsv.ReadOptions(column_names=names),
                            convert_options=pacsv.ConvertOptions(column_types=dict(zip(names, types))))
    return result.to_pandas()


# ---- the parent -----------------------------------------------------------------------------------
def run_child(args: argparse.Namespace, repo: Path, kind: str, save: str | None = None) -> tuple[float, bool]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--repo", str(repo),
               "--dsn", args.dsn, "--schema", args.schema]
    if save:
        command += ["--save", save]
    if kind == "sdk-sort":
        set_vars(repo, {"featurehouse_pg_plan": "sort"})
    elif kind.startswith("sdk-windows-"):  # sdk-windows-range / -buckets: force the min/max method
        set_vars(repo, {"featurehouse_pg_window_extremes": kind.removeprefix("sdk-windows-")})
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    elapsed = time.perf_counter() - start
    if kind == "sdk-sort" or kind.startswith("sdk-windows-"):
        set_vars(repo, {})
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr.decode()[-3000:]}")
    return elapsed, b"rendered-with-dbt" in done.stdout


def set_vars(repo: Path, values: dict[str, str]) -> None:
    """Force featurehouse's choices with dbt vars (empty: auto); each choice has its own cached rendering."""
    project = repo / "dbt_project.yml"
    text = project.read_text().split("vars:")[0]
    project.write_text(text + ("vars:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items()) if values else ""))


def verify(args: argparse.Namespace, repo: Path, kinds: list[str]) -> None:
    import pandas as pd

    frames = {}
    for kind in kinds:
        path = repo / f"result_{kind}.parquet"
        run_child(args, repo, kind, save=str(path))
        frames[kind] = pd.read_parquet(path)
    reference = frames["lateral"]
    for kind, frame in frames.items():
        got = frame[["driver_id", "event_timestamp", *(n for n, _ in FEATURES)]].reset_index(drop=True)
        got["event_timestamp"] = got["event_timestamp"].astype("datetime64[us]")
        want = reference.reset_index(drop=True).copy()
        want["event_timestamp"] = want["event_timestamp"].astype("datetime64[us]")
        for name, _ in FEATURES:
            if not got[name].astype("float64").equals(want[name].astype("float64")):
                raise SystemExit(f"{kind}: column {name} differs from the LATERAL query's")
        if len(got) != len(want) or not (got["driver_id"].values == want["driver_id"].values).all():
            raise SystemExit(f"{kind}: rows differ from the LATERAL query's")
    print(f"identical results: {', '.join(kinds)} ({len(reference):,} rows, "
          f"{int(reference['conv'].notna().sum()):,} with a value)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="1M spine x 10M feature rows over 100k drivers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", default=os.environ.get("FEATUREHOUSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--schema", default="fh_bench_pg")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the schema and data for the next run")
    parser.add_argument("--no-distinct-on", action="store_true", help="skip the DISTINCT ON query (slow at --large)")
    parser.add_argument("--aggregations", action="store_true",
                        help="only the 9 window aggregations (sum, count, max over 1h, 1d, 7d) vs the one-view join")
    parser.add_argument("--extremes", action="store_true",
                        help="with --aggregations: also force each min/max method (RANGE frame, time buckets)")
    parser.add_argument("--functions", default=",".join(AGGREGATION_FUNCTIONS),
                        help="with --aggregations: the functions, comma-separated (each over 1h, 1d, 7d)")
    parser.add_argument("--spine-rows", type=int)
    parser.add_argument("--feature-rows", type=int)
    parser.add_argument("--entities", type=int)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = (1_000_000, 10_000_000, 100_000) if args.large else (100_000, 1_000_000, 10_000)
    args.spine_rows, args.feature_rows, args.entities = (
        given or default for given, default in zip((args.spine_rows, args.feature_rows, args.entities), sizes))
    repo = HERE / ".data" / f"postgres_{args.spine_rows}_{args.feature_rows}"
    marker = repo / "data" / "spine.parquet"
    if args.regenerate or not marker.exists():
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        started = time.perf_counter()
        generate(args, repo)
        print(f"generated {args.feature_rows:,} feature rows and {args.spine_rows:,} spine rows "
              f"in {time.perf_counter() - started:.0f} s")
    kinds = ["lateral", *([] if args.no_distinct_on else ["distinct_on"]), "sdk", "sdk-sort"]
    if args.aggregations:
        try:
            aggregation_rounds(args, repo)
        finally:
            cleanup(args, repo)
        return
    try:
        verify(args, repo, kinds)
        samples: dict[str, list[float]] = {kind: [] for kind in [*kinds, "sdk-cold"]}
        for _ in range(args.repeat):
            for kind in kinds:
                samples[kind].append(run_child(args, repo, kind)[0])
            shutil.rmtree(repo / "target" / "featurehouse" / "rendered", ignore_errors=True)
            elapsed, rendered = run_child(args, repo, "sdk")
            assert rendered, "a cold run must render with dbt"
            samples["sdk-cold"].append(elapsed)
        fastest = min(statistics.median(samples[k]) for k in ("lateral", "distinct_on") if samples.get(k))
        load = os.getloadavg()
        print(f"\n{args.spine_rows:,} spine x {args.feature_rows:,} feature rows, {args.entities:,} drivers; "
              f"{args.repeat} interleaved rounds; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print("| variant | median s | best s | median / fastest hand-written |")
        print("| --- | --- | --- | --- |")
        for kind, values in samples.items():
            if values:
                print(f"| {kind} | {statistics.median(values):.2f} | {min(values):.2f} | "
                      f"{statistics.median(values) / fastest:.2f} |")
    finally:
        cleanup(args, repo)


def aggregation_rounds(args: argparse.Namespace, repo: Path) -> None:
    """The 9 window aggregations against the one-view point-in-time join, whole processes."""
    kinds = ["sdk", "sdk-windows", *(["sdk-windows-range", "sdk-windows-buckets"] if args.extremes else [])]
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    for kind in samples:  # a first, unmeasured run of each renders and warms the cache
        run_child(args, repo, kind)
    for _ in range(args.repeat):
        for kind in samples:
            samples[kind].append(run_child(args, repo, kind)[0])
    base = statistics.median(samples["sdk"])
    load = os.getloadavg()
    print(f"\n{args.spine_rows:,} spine x {args.feature_rows:,} events, {args.entities:,} drivers; "
          f"{args.repeat} interleaved rounds; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| variant | median s | best s | ratio to the one-view join |")
    print("| --- | --- | --- | --- |")
    outputs = f"{3 * len(args.functions.split(','))} window aggregations ({args.functions})"
    labels = {"sdk": "point-in-time join, 1 view", "sdk-windows": outputs,
              "sdk-windows-range": f"{outputs}, min/max by RANGE frame",
              "sdk-windows-buckets": f"{outputs}, min/max by time buckets"}
    for kind, values in samples.items():
        label = labels[kind]
        median = statistics.median(values)
        print(f"| {label} | {median:.2f} | {min(values):.2f} | {median / base:.2f} |")


def cleanup(args: argparse.Namespace, repo: Path) -> None:
    if not args.keep:
        import psycopg

        with psycopg.connect(args.dsn, autocommit=True) as con:
            con.execute(f'drop schema if exists "{args.schema}" cascade')
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
