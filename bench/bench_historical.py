"""Training-set benchmark: get_historical_features vs a hand-written DuckDB ASOF JOIN.

Each measurement is a whole Python process (start-up and imports included) that reads the
spine from the same parquet file, computes the training set and fetches it to Arrow or
pandas; the parent records its wall time and peak RSS (wait4's rusage). Variants run
interleaved, several times, and the table shows medians, because the machine is shared.

    .venv/bin/python bench/bench_historical.py            # 1M spine x 10M feature rows
    .venv/bin/python bench/bench_historical.py --small    # 100k x 1M, a quick check

The data is generated inside DuckDB (range() and hash(), nothing row by row in Python)
into a throwaway feature repo under bench/.data/, built once with `featurehouse compile`
and `dbt run`, and reused while its parameters stay the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VIEWS = ("stats_a", "stats_b", "stats_c")
FEATURES = {  # per view: (name, dtype) in schema order
    view: [(f"{view}_conv", "float32"), (f"{view}_acc", "float32"), (f"{view}_trips", "int64")]
    for view in VIEWS
}
BASE_TIME = "2026-01-01 00:00:00"
DAYS = 30


# ---- data -------------------------------------------------------------------------------------
def specs_yaml() -> str:
    lines = [
        "entities:",
        "  - {name: driver, join_keys: [driver_id], value_type: int64}",
        "sources:",
    ]
    for view in VIEWS:
        lines += [
            f"  - name: {view}_source",
            f"    table: main.raw_{view}",
            "    timestamp_field: event_timestamp",
            "    created_timestamp_column: created",
        ]
    lines.append("feature_views:")
    for view in VIEWS:
        lines += [
            f"  - name: {view}",
            "    entities: [driver]",
            f"    source: {view}_source",
            "    ttl: 1d",
            "    schema:",
            *[f"      - {{name: {name}, dtype: {dtype}}}" for name, dtype in FEATURES[view]],
        ]
    return "\n".join(lines) + "\n"


def generate(repo: Path, spine_rows: int, feature_rows: int, entities: int) -> None:
    """Write the feature repo, its raw tables and the spine parquet; build the feature views."""
    sys.path.insert(0, str(ROOT / "tests"))
    import duckdb
    from support.repos import write_repo

    if repo.exists():
        shutil.rmtree(repo)
    write_repo(repo, {"bench.yml": specs_yaml()})
    link_package(repo, package_snapshot(repo.parent))
    con = duckdb.connect(str(repo / "data" / "warehouse.duckdb"))
    span = DAYS * 24  # hours: ~feature_rows/entities rows per entity over DAYS days
    for seed, view in enumerate(VIEWS):
        conv, acc, trips = (name for name, _ in FEATURES[view])
        # Event times on whole hours, so rows of one entity often tie on event time; created
        # times a few minutes later, so a few rows also tie on created time (full ties), which
        # the NULLs and values of the features then break.
        con.execute(f"""
            create or replace table raw_{view} as
            select
                cast(hash(i, {seed}, 'k') % {entities} as bigint) as driver_id,
                timestamp '{BASE_TIME}' + to_hours(cast(hash(i, {seed}, 'e') % {span} as bigint)) as event_timestamp,
                case when hash(i, {seed}, 'n') % 1000 = 0 then null
                     else timestamp '{BASE_TIME}' + to_hours(cast(hash(i, {seed}, 'e') % {span} as bigint))
                          + to_minutes(cast(hash(i, {seed}, 'c') % 2000 as bigint)) end as created,
                case when hash(i, {seed}, 'v') % 100 = 0 then null
                     else cast((hash(i, {seed}, 'v') % 1000) / 1000.0 as float) end as {conv},
                cast((hash(i, {seed}, 'a') % 1000) / 1000.0 as float) as {acc},
                cast(hash(i, {seed}, 't') % 50 as bigint) as {trips}
            from range({feature_rows}) as r(i)
        """).fetchall()
    # Spine: 10% of its entities have no feature rows at all; times at whole seconds over
    # DAYS + 1 days, so some rows are exactly at an event time or ttl old, some have no candidate.
    spine = repo / "data" / "spine.parquet"
    con.execute(f"""
        copy (
            select
                cast(hash(i, 's', 'k') % {entities + entities // 10} as bigint) as driver_id,
                timestamp '{BASE_TIME}' + to_seconds(cast(hash(i, 's', 't') % {(DAYS + 1) * 86400} as bigint)) as event_timestamp,
                cast(hash(i, 's', 'l') % 2 as integer) as label
            from range({spine_rows}) as r(i)
        ) to '{spine}' (format parquet)
    """).fetchall()
    con.close()
    subprocess.run([sys.executable, "-c", "from featurehouse.cli.app import main; main()", "--repo", str(repo), "compile"], check=True,
                   stdout=subprocess.DEVNULL)
    # dbt in its own process: dbt-duckdb keeps its connection (and the file lock) open
    subprocess.run([str(Path(sys.executable).parent / "dbt"), "run", "--project-dir", str(repo),
                    "--profiles-dir", str(repo), "--quiet"], check=True, cwd=repo)
    con = duckdb.connect(str(repo / "data" / "warehouse.duckdb"))
    for view in VIEWS:
        con.execute(f"drop table raw_{view}").fetchall()  # only the fv_ tables are read
    con.execute("checkpoint").fetchall()
    con.close()


# ---- the child processes ------------------------------------------------------------------------
BASELINE_SQL = """
with probe as (
    select *, row_number() over () as rn,
           {{'e': event_timestamp, 'c': 'infinity'::timestamp, 'v': null}} as k
    from spine
){ctes}
select s.driver_id, s.event_timestamp, s.label{selects}
from probe as s{joins}
order by s.rn
"""


def baseline_sql(views: tuple[str, ...]) -> str:
    """The hand-written query: one ASOF inequality on a struct key (event, created, features).

    The fastest query found that returns the full-tie rule's rows (docs/decisions/0015:
    every repair of hugeint_sql's arbitrary ties cost more than the struct key does).

    DuckDB compares structs field by field, and NULL sorts last inside a struct, so the
    probe {t, +infinity, NULL} is >= every row with event <= t and the greatest such key is
    the winner of the tie-break; the features are read back out of the matched key.
    """
    ctes, selects, joins = "", "", ""
    for i, view in enumerate(views):
        names = [name for name, _ in FEATURES[view]]
        values = ", ".join(f"'{n}': {n}" for n in names)
        ctes += f"""
, f{i} as (
    select driver_id,
           {{'e': event_timestamp, 'c': coalesce(created_timestamp, '-infinity'::timestamp), 'v': {{{values}}}}} as k
    from main.fv_{view}
    where event_timestamp is not null
)"""
        for n in names:
            selects += f",\n       case when f{i}.k.e >= s.event_timestamp - interval 1 day then f{i}.k.v.{n} end as {n}"
        joins += f"\nasof left join f{i} on f{i}.driver_id = s.driver_id and s.k >= f{i}.k"
    return BASELINE_SQL.format(ctes=ctes, selects=selects, joins=joins)


def winners_sql(views: tuple[str, ...]) -> str:
    """The same hand-written query over the tables the feature view models' hook writes beside
    them (``fv_<view>__winners``: the tie-break's winner per driver and event time, decision
    0032): one native ASOF inequality on the event time. The fastest correct query there is once
    those tables exist, so the SDK is held to it too."""
    selects, joins = "", ""
    for i, view in enumerate(views):
        for n, _ in FEATURES[view]:
            selects += f",\n       case when f{i}.event_timestamp >= s.event_timestamp - interval 1 day then f{i}.{n} end as {n}"
        joins += (f"\nasof left join main.fv_{view}__winners as f{i} "
                  f"on f{i}.driver_id = s.driver_id and s.event_timestamp >= f{i}.event_timestamp")
    return ("with probe as (select *, row_number() over () as rn from spine)\n"
            f"select s.driver_id, s.event_timestamp, s.label{selects}\nfrom probe as s{joins}\norder by s.rn")


HUGEINT_SQL = """
with probe as (
    select *, row_number() over () as rn,
           epoch_us(event_timestamp)::hugeint * 10000000000000000 + 9999999999999999 as k
    from spine
){ctes}
select s.driver_id, s.event_timestamp, s.label{selects}
from probe as s{joins}
order by s.rn
"""


def hugeint_sql(views: tuple[str, ...]) -> str:
    """The issue's hand-written query: event and created time folded into one HUGEINT.

    `epoch_us(event) * 10^16 + epoch_us(created)` (NULL created as 0, the oldest), probed at
    `epoch_us(t) * 10^16 + 10^16 - 1`: one native ASOF inequality breaks created-time ties,
    but rows that tie on key, event AND created time get the same HUGEINT, and ASOF returns
    any one of them (NOTES: not deterministic), so this is a speed reference only. The
    bench counts the rows where it disagrees with the full-tie rule.
    """
    ctes, selects, joins = "", "", ""
    for i, view in enumerate(views):
        names = [name for name, _ in FEATURES[view]]
        ctes += f"""
, f{i} as (
    select driver_id, event_timestamp as e,
           epoch_us(event_timestamp)::hugeint * 10000000000000000 + coalesce(epoch_us(created_timestamp), 0) as k,
           {", ".join(names)}
    from main.fv_{view}
    where event_timestamp is not null
)"""
        for n in names:
            selects += f",\n       case when f{i}.e >= s.event_timestamp - interval 1 day then f{i}.{n} end as {n}"
        joins += f"\nasof left join f{i} on f{i}.driver_id = s.driver_id and s.k >= f{i}.k"
    return HUGEINT_SQL.format(ctes=ctes, selects=selects, joins=joins)


def child(args: argparse.Namespace) -> None:
    """One measured run; everything it imports counts."""
    repo = Path(args.repo)
    spine_path = repo / "data" / "spine.parquet"
    views = VIEWS[: args.views]
    if args.child == "sdk":
        from featurehouse.sdk.store import FeatureStore

        if args.output == "arrow":
            import pyarrow.parquet as pq

            entity_df = pq.read_table(spine_path)
        else:
            import pandas as pd

            entity_df = pd.read_parquet(spine_path)
        store = FeatureStore(repo, target=args.target)
        job = store.get_historical_features(entity_df, [f"{view}:{name}" for view in views for name, _ in FEATURES[view]])
        from featurehouse.dbt.rendering import cached, render
        from featurehouse.sdk.store import ROW_NUMBER_COLUMN

        whole_call = job._calls("event_timestamp", [ROW_NUMBER_COLUMN], ROW_NUMBER_COLUMN)[0]
        if args.render_whole:  # have dbt render this call's whole SQL: the warm path runs it as one query
            render(repo, store.target, whole_call)
        path = "whole" if cached(repo, store.target, whole_call) is not None else "not-whole"
        result = job.to_arrow() if args.output == "arrow" else job.to_df()
    else:
        import duckdb

        con = duckdb.connect(str(repo / "data" / "warehouse.duckdb"), read_only=True)
        con.execute("SET TimeZone = 'UTC'").fetchall()
        sql = {"hugeint": hugeint_sql, "winners": winners_sql}.get(args.child, baseline_sql)(views)
        if args.output == "arrow":
            import pyarrow.parquet as pq

            spine = pq.read_table(spine_path)
            con.register("spine", spine)
            result = con.sql(sql).to_arrow_table()
        else:
            import pandas as pd

            spine = pd.read_parquet(spine_path)
            con.register("spine", spine)
            result = con.sql(sql).df()
    if args.save:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = result if args.output == "arrow" else pa.Table.from_pandas(result, preserve_index=False)
        pq.write_table(table, args.save)
    rendering = sys.modules.get("featurehouse.dbt.rendering")
    print(len(result), "rendered-with-dbt" if getattr(rendering, "_runner", None) is not None else "cached",
          path if args.child == "sdk" else "")


# ---- the parent -----------------------------------------------------------------------------------
class Sample(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds
    rss: float  # peak resident set, GiB
    rendered: bool  # the SDK ran dbt to render the macro (a cold run)
    whole: bool  # the SDK found the whole call rendered (one query; else one piece per view)


def package_snapshot(data: Path) -> Path:
    """A copy of this checkout's dbt package (macros), as `dbt deps` would install it.

    The bench repo links to the copy rather than to the live checkout, so that edits made
    to the macros while the bench runs cannot turn warm runs into cold ones.
    """
    package = data / "featurehouse_package"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    shutil.copytree(ROOT / "macros", package / "macros")
    shutil.copy(ROOT / "dbt_project.yml", package / "dbt_project.yml")
    return package


def link_package(repo: Path, package: Path) -> None:
    link = repo / "dbt_packages" / "featurehouse"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(package.resolve())


def add_capped_target(repo: Path, memory_limit: str) -> None:
    """A profiles.yml target `capped`: the same warehouse with DuckDB's memory_limit set."""
    profiles = repo / "profiles.yml"
    text = profiles.read_text().split("    capped:\n")[0]
    profiles.write_text(text + f"""    capped:
      type: duckdb
      path: data/warehouse.duckdb
      threads: 1
      settings:
        memory_limit: {memory_limit}
""")


def pieces_only_cache(repo: Path, cache: Path) -> Path:
    """A rendering cache holding only what `featurehouse compile` renders (each view's piece): what a
    call for a feature set never asked before finds (docs/decisions/0031-cold-training-calls.md)."""
    pieces = cache.with_name("rendered.pieces")
    aside = cache.with_name("rendered.aside")
    shutil.rmtree(pieces, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)
    if cache.exists():
        cache.rename(aside)
    try:
        subprocess.run([sys.executable, "-c", "from featurehouse.cli.app import main; main()", "--repo", str(repo),
                        "compile"], check=True, stdout=subprocess.DEVNULL)
        cache.rename(pieces)
    finally:
        if aside.exists():
            aside.rename(cache)
    return pieces


def run_child(repo: Path, kind: str, output: str, views: int, save: str | None = None,
              target: str | None = None, render_whole: bool = False) -> Sample:
    """Wall time, CPU time and peak RSS of one child process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--output", output,
               "--views", str(views), "--repo", str(repo)]
    if target:
        command += ["--target", target]
    if save:
        command += ["--save", save]
    if render_whole:
        command.append("--render-whole")
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stdout, stderr = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{kind}/{output}/{views} failed:\n{stderr.decode()[-3000:]}")
    return Sample(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024 / 1024,  # KiB -> GiB
                  b"rendered-with-dbt" in stdout, b" whole" in stdout)


def verify(repo: Path, views: int, scratch: Path) -> str:
    """Run SDK and baseline once, saving results; check they are equal row by row."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    results = {}
    for kind in ("sdk", "baseline", "winners"):
        path = scratch / f"{kind}_{views}.parquet"
        run_child(repo, kind, "arrow", views, save=str(path))
        results[kind] = pq.read_table(path)
    sdk = results["sdk"]
    for kind in ("baseline", "winners"):
        baseline = results[kind]
        if sdk.num_rows != baseline.num_rows or sdk.column_names != baseline.column_names:
            raise SystemExit(f"results differ in shape: {sdk.num_rows} rows {sdk.column_names} vs "
                             f"{baseline.num_rows} rows {baseline.column_names} ({kind})")
        for name in sdk.column_names:
            left, right = sdk.column(name), baseline.column(name)
            if left.type != right.type:
                right = right.cast(left.type)
            if not left.equals(right):
                raise SystemExit(f"column {name} differs between the SDK and the hand-written query ({kind})")
    found = sum(pc.sum(pc.is_valid(sdk.column(name))).as_py() for name, _ in FEATURES[VIEWS[0]][:1])
    # the HUGEINT reference: the rows where it breaks a full tie otherwise than the rule
    path = scratch / f"hugeint_{views}.parquet"
    run_child(repo, "hugeint", "arrow", views, save=str(path))
    hugeint = pq.read_table(path)
    differs = None
    for name in sdk.column_names:
        left, right = sdk.column(name), hugeint.column(name).cast(sdk.column(name).type)
        same = pc.or_(pc.fill_null(pc.equal(left, right), False), pc.and_(pc.is_null(left), pc.is_null(right)))
        differs = pc.invert(same) if differs is None else pc.or_(differs, pc.invert(same))
    wrong = pc.sum(differs).as_py() or 0
    return (f"{sdk.num_rows:,} rows, {len(sdk.column_names)} columns equal ({found:,} rows with a value); "
            f"the HUGEINT query differs on {wrong:,} rows (full ties)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--small", action="store_true", help="100k spine x 1M feature rows over 10k entities")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (medians are reported)")
    parser.add_argument("--cold-repeat", type=int, default=3)
    parser.add_argument("--data", default=str(HERE / ".data"))
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--child", choices=("sdk", "baseline", "winners", "hugeint"), help=argparse.SUPPRESS)
    parser.add_argument("--output", choices=("arrow", "df"), default="arrow", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--render-whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", default="1.5GB",
                        help="DuckDB memory_limit of the extra capped 3-view run (profile settings)")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.small:
        args.spine_rows, args.feature_rows, args.entities = 100_000, 1_000_000, 10_000
    params = {"version": 3, "spine": args.spine_rows, "features": args.feature_rows, "entities": args.entities,
              "specs": specs_yaml()}
    repo = Path(args.data) / f"repo_{args.spine_rows}x{args.feature_rows}"
    stamp = repo / "bench-params.json"
    if args.regenerate or not stamp.is_file() or json.loads(stamp.read_text()) != params:
        print(f"generating {args.spine_rows:,} spine x {args.feature_rows:,} feature rows per view "
              f"({len(VIEWS)} views) over {args.entities:,} entities in {repo} ...", flush=True)
        start = time.perf_counter()
        generate(repo, args.spine_rows, args.feature_rows, args.entities)
        stamp.write_text(json.dumps(params))
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    link_package(repo, package_snapshot(Path(args.data)))
    add_capped_target(repo, args.memory_limit)
    cache = repo / "target" / "featurehouse" / "rendered"

    scratch = Path(args.data) / "results"
    scratch.mkdir(parents=True, exist_ok=True)
    print("checking that the SDK returns exactly what the hand-written query returns:", flush=True)
    for views in (1, len(VIEWS)):
        print(f"  {views} view(s): {verify(repo, views, scratch)}", flush=True)
    shutil.rmtree(scratch)

    many = len(VIEWS)
    capped = f"sdk to_arrow, {many} views, {args.memory_limit}"
    variants = {  # name -> (kind, output, views, cold, dbt target)
        "hand-written, arrow, 1 view": ("baseline", "arrow", 1, False, None),
        "sdk to_arrow, 1 view": ("sdk", "arrow", 1, False, None),
        "hand-written, pandas, 1 view": ("baseline", "df", 1, False, None),
        "sdk to_df, 1 view": ("sdk", "df", 1, False, None),
        "hand-written over winners, 1 view": ("winners", "arrow", 1, False, None),
        f"hand-written, arrow, {many} views": ("baseline", "arrow", many, False, None),
        f"hand-written over winners, {many} views": ("winners", "arrow", many, False, None),
        f"sdk to_arrow, {many} views": ("sdk", "arrow", many, False, None),
        capped: ("sdk", "arrow", many, False, "capped"),
        "sdk to_arrow, 1 view, cold": ("sdk", "arrow", 1, True, None),
        "sdk to_arrow, 1 view, new set": ("sdk", "arrow", 1, "pieces", None),
        f"sdk to_arrow, {many} views, new set": ("sdk", "arrow", many, "pieces", None),
        "HUGEINT (ties arbitrary), arrow": ("hugeint", "arrow", 1, False, None),
        "HUGEINT (ties arbitrary), pandas": ("hugeint", "df", 1, False, None),
    }
    baseline_of = {"sdk to_arrow, 1 view": "hand-written, arrow, 1 view",
                   "sdk to_df, 1 view": "hand-written, pandas, 1 view",
                   f"sdk to_arrow, {many} views": f"hand-written, arrow, {many} views",
                   capped: f"hand-written, arrow, {many} views",
                   "sdk to_arrow, 1 view, cold": "hand-written, arrow, 1 view",
                   "sdk to_arrow, 1 view, new set": "hand-written, arrow, 1 view",
                   f"sdk to_arrow, {many} views, new set": f"hand-written, arrow, {many} views",
                   "HUGEINT (ties arbitrary), arrow": "hand-written, arrow, 1 view",
                   "HUGEINT (ties arbitrary), pandas": "hand-written, pandas, 1 view"}
    pieces = pieces_only_cache(repo, cache)
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    load_before = f"{os.getloadavg()[0]:.1f}"
    print(f"measuring: {args.repeat} interleaved rounds of {len(variants)} processes", flush=True)
    for round_ in range(args.repeat):
        for name, (kind, output, views, cold, target) in variants.items():
            if cold and round_ >= args.cold_repeat:
                continue
            if cold:  # an empty rendering cache (or only the pieces); the warm renderings are put back afterwards
                aside = cache.with_name("rendered.aside")
                shutil.rmtree(aside, ignore_errors=True)
                if cache.exists():
                    cache.rename(aside)
                if cold == "pieces":
                    shutil.copytree(pieces, cache)
            elif kind == "sdk" and round_ == 0:  # fill the rendering cache with the whole call
                run_child(repo, kind, output, views, target=target, render_whole=True)
            sample = run_child(repo, kind, output, views, target=target)
            if cold:
                shutil.rmtree(cache, ignore_errors=True)
                if aside.exists():
                    aside.rename(cache)
            if kind == "sdk" and cold is not True and sample.whole != (not cold):
                raise SystemExit(f"'{name}' ran {'the whole call' if sample.whole else 'the pieces'}: the rendering "
                                 "cache did not behave as the bench expects")
            if kind == "sdk" and sample.rendered != (cold is True):
                raise SystemExit(f"'{name}' was {'cold' if sample.rendered else 'warm'}: the rendering cache "
                                 "did not behave as the bench expects")
            samples[name].append(sample)
        print(f"  round {round_ + 1}/{args.repeat} done", flush=True)

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples[name])

    print()
    print(f"{args.spine_rows:,} spine rows x {args.feature_rows:,} feature rows per view over {args.entities:,} "
          f"entities, ttl 1d. Whole processes (start-up, imports, reading the spine parquet, fetching the result); "
          f"median of {args.repeat} interleaved runs ({min(args.cold_repeat, args.repeat)} cold) on "
          f"{os.cpu_count()} shared cores; load average before: {load_before}, after: {os.getloadavg()[0]:.1f}.")
    header = (f"{'variant':<32} {'wall s':>7} {'min':>6} {'max':>6} {'cpu s':>6} {'peak RSS GB':>11} "
              f"{'wall vs hand-written':>20} {'cpu vs hand-written':>19}")
    print(header)
    print("-" * len(header))
    for name in variants:
        walls = [s.wall for s in samples[name]]
        ratio = f"{median(name, 'wall') / median(baseline_of[name], 'wall'):.2f}x" if name in baseline_of else ""
        cpu = f"{median(name, 'cpu') / median(baseline_of[name], 'cpu'):.2f}x" if name in baseline_of else ""
        print(f"{name:<32} {median(name, 'wall'):>7.2f} {min(walls):>6.2f} {max(walls):>6.2f} "
              f"{median(name, 'cpu'):>6.2f} {max(s.rss for s in samples[name]):>11.2f} {ratio:>20} {cpu:>19}")
    one, three = median("sdk to_arrow, 1 view", "wall"), median(f"sdk to_arrow, {many} views", "wall")
    one_peak = max(s.rss for name in ("sdk to_arrow, 1 view", "sdk to_df, 1 view") for s in samples[name])
    peak = max(s.rss for s in samples[f"sdk to_arrow, {many} views"])
    def peak_of(name: str) -> float:
        return statistics.median(s.rss for s in samples[name])

    checks = [
        ("sdk to_arrow / hand-written (warm)", one / median("hand-written, arrow, 1 view", "wall"), 1.1, "x"),
        ("sdk to_df / hand-written (warm)",
         median("sdk to_df, 1 view", "wall") / median("hand-written, pandas, 1 view", "wall"), 1.1, "x"),
        ("sdk to_df / hand-written, peak RSS", peak_of("sdk to_df, 1 view") / peak_of("hand-written, pandas, 1 view"), 1.2, "x"),
        ("sdk to_arrow / hand-written, peak RSS",
         peak_of("sdk to_arrow, 1 view") / peak_of("hand-written, arrow, 1 view"), 1.2, "x"),
        (f"sdk {many} views / 1 view", three / one, 2.0, "x"),
        ("sdk peak RSS GB, 1 view (max of runs)", one_peak, 2.5, ""),
        (f"sdk peak RSS GB, {many} views, default", peak, 2.5, ""),
        (f"sdk peak RSS GB, {many} views, {args.memory_limit}", max(s.rss for s in samples[capped]), 2.5, ""),
    ]
    checks[1:1] = [
        ("sdk to_arrow / hand-written over winners", one / median("hand-written over winners, 1 view", "wall"), 1.1, "x"),
        (f"sdk / hand-written over winners, {many} views",
         three / median(f"hand-written over winners, {many} views", "wall"), 1.1, "x"),
        (f"hand-written over winners, {many} views / 1 view",
         median(f"hand-written over winners, {many} views", "wall") / median("hand-written over winners, 1 view", "wall"),
         2.0, "x"),
    ]
    for views in (1, many):
        new = f"sdk to_arrow, {views} view{'s' if views > 1 else ''}, new set"
        warm = "sdk to_arrow, 1 view" if views == 1 else f"sdk to_arrow, {many} views"
        checks.append((f"new set - warm, {views} view(s), s", median(new, "wall") - median(warm, "wall"), 1.0, ""))
    print()
    print(f"{'target (warm path)':<36} {'measured':>9} {'limit':>7}  ")
    for label, value, limit, unit in checks:
        print(f"{label:<36} {value:>8.2f}{unit or ' '} {limit:>6.2f}{unit or ' '}  {'ok' if value <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
