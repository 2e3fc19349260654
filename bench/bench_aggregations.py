"""Window-aggregation benchmark: 3 functions x 3 windows vs the one-view point-in-time join.

Both run through ``FeatureStore.get_historical_features`` (SQL spine, result fetched to
Arrow) on DuckDB over the same events, in the same process, interleaved, so the ratio
holds even on a shared machine:

- ``pit``:  one plain view (the latest ``amount``), the native ASOF path;
- ``agg``:  sum, count and max of ``amount`` over 1h, 1d and 7d (9 outputs).

Each runs on the base data and on data with twice the events per entity (same entities,
same time span), to show that the time grows linearly, not with events x window.

    .venv/bin/python bench/bench_aggregations.py            # 1M spine, 10M / 20M events, 100k entities
    .venv/bin/python bench/bench_aggregations.py --small    # 100k spine, 1M / 2M events, 10k entities

Data is generated inside DuckDB (range() and hash()) into a throwaway repo under
bench/.data/aggregations/, compiled and built with dbt once, reused while the sizes stay
the same. Rendering is warmed up first, so the times are the warehouse's work plus the
Arrow fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAYS = 30
FUNCTIONS = ("sum", "count", "max")
WINDOWS = ("1h", "1d", "7d")
SCALES = {"1x": 1, "2x": 2}


def specs_yaml() -> str:
    aggregations = "\n".join(
        f"      - {{column: amount, function: {f}, window: {w}}}" for w in WINDOWS for f in FUNCTIONS
    )
    text = "entities:\n  - {name: card, join_keys: [card_id], value_type: int64}\nsources:\n"
    for scale in SCALES:
        text += f"  - {{name: events_{scale}, table: main.raw_events_{scale}, timestamp_field: event_timestamp}}\n"
    text += "feature_views:\n"
    for scale in SCALES:
        text += (
            f"  - name: plain_{scale}\n    entities: [card]\n    source: events_{scale}\n"
            "    schema:\n      - {name: amount, dtype: float64}\n    online: false\n"
            f"  - name: agg_{scale}\n    entities: [card]\n    source: events_{scale}\n"
            f"    aggregations:\n{aggregations}\n    online: false\n"
        )
    return text


def build(root: Path, spine_rows: int, events: int, entities: int) -> None:
    """Write the repo, generate the raw tables in DuckDB, compile and dbt run (once per size)."""
    marker = root / "built.json"
    wanted = {"spine": spine_rows, "events": events, "entities": entities, "days": DAYS}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    if root.exists():
        shutil.rmtree(root)
    sys.path.insert(0, str(ROOT / "tests"))
    from support.repos import run_dbt, write_repo

    import duckdb

    write_repo(root, {"specs.yml": specs_yaml()})
    span = DAYS * 86400
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    started = time.perf_counter()
    for scale, factor in SCALES.items():
        con.execute(f"""
            create table raw_events_{scale} as
            select (hash(i) % {entities})::bigint as card_id,
                   timestamp '2026-01-01' + to_microseconds((hash(i * 7 + 1) % {span * 1_000_000})::bigint) as event_timestamp,
                   ((hash(i * 13 + 5) % 100000) / 100.0)::double as amount
            from range({events * factor}) as t(i)
        """).fetchall()
    con.execute(f"""
        create table spine as
        select (hash(i + 999) % {entities})::bigint as card_id,
               timestamp '2026-01-01' + to_microseconds((hash(i * 3 + 2) % {span * 1_000_000})::bigint) as event_timestamp,
               i % 2 as label
        from range({spine_rows}) as t(i)
    """).fetchall()
    con.close()
    print(f"generated data in {time.perf_counter() - started:.1f} s", flush=True)
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    run_dbt(root, "run", "--select", "fv_*")
    marker.write_text(json.dumps(wanted))


def hand_written_sql(scale: str) -> str:
    """The 9 aggregations as one writes them by hand in DuckDB: RANGE frames over the union of the
    events and the spine rows (window (t - W, t]: W - 1 µs preceding, peers at t included)."""
    seconds = {"1h": 3600, "1d": 86400, "7d": 7 * 86400}
    outputs = []
    for window in WINDOWS:
        for function in FUNCTIONS:
            outputs.append(f"{function}(amount) over w_{window} as {function}_{window}")
    frames = ",\n        ".join(
        f"w_{window} as (partition by card_id order by t range between "
        f"interval '{seconds[window] - 1}.999999 seconds' preceding and current row)"
        for window in WINDOWS
    )
    names = [f"{function}_{window}" for window in WINDOWS for function in FUNCTIONS]
    return f"""
    with spine as (
        select card_id, event_timestamp, label, row_number() over () as rn from main.spine
    ),
    windows as (
        select rn, {", ".join(outputs)}
        from (
            select card_id, event_timestamp as t, amount, null::bigint as rn
            from main.fv_agg_{scale}
            where event_timestamp is not null and card_id is not null and amount is not null
            union all
            select card_id, event_timestamp, null, rn from spine where event_timestamp is not null
        )
        window {frames}
    )
    select s.card_id, s.event_timestamp, s.label, {", ".join("w." + n for n in names)}
    from spine as s left join (select * from windows where rn is not null) as w using (rn)
    order by s.rn
    """


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100k spine rows, 1M events, 10k entities")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (median reported)")
    args = parser.parse_args()
    spine_rows, events, entities = (100_000, 1_000_000, 10_000) if args.small else (1_000_000, 10_000_000, 100_000)
    root = HERE / ".data" / "aggregations" / ("small" if args.small else "full")
    build(root, spine_rows, events, entities)

    from featurehouse.sdk.store import FeatureStore

    store = FeatureStore(root, target="dev")
    spine = "select card_id, event_timestamp, label from main.spine"
    variants = {f"{kind}_{scale}": (f"{kind}_{scale}", scale) for scale in SCALES for kind in ("pit", "agg")}
    variants["hand_1x"] = ("hand_1x", "1x")
    warehouse = store._warehouse()

    def cpu_seconds() -> float:  # this process, all of DuckDB's threads included
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def run(variant: str, query: str) -> float:
        kind, scale = variant.split("_")
        view = f"plain_{scale}" if kind == "pit" else f"agg_{scale}"
        started, cpu = time.perf_counter(), cpu_seconds()
        if kind == "hand":
            sql = hand_written_sql(scale)
            table = warehouse.arrow(sql.replace("from main.spine", f"from ({query})") if "limit" in query else sql)
        else:
            table = store.get_historical_features(entity_df=query, features=[view]).to_arrow()
        results[variant] = table
        elapsed = time.perf_counter() - started
        cpu_times[variant].append(cpu_seconds() - cpu)
        assert table.num_rows == (10 if "limit" in query else spine_rows)
        return elapsed

    cpu_times: dict[str, list[float]] = {v: [] for v in variants}
    results: dict[str, object] = {}
    for variant in variants:  # render (dbt) and warm the caches, untimed
        run(variant, spine + " limit 10")
    run("agg_1x", spine)
    run("hand_1x", spine)
    print(f"hand-written query equals featurehouse's: {same_values(results['agg_1x'], results['hand_1x'])}", flush=True)
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu_times = {v: [] for v in variants}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        for variant in variants:
            times[variant].append(run(variant, spine))
            print(f"  {variant}: {times[variant][-1]:.2f} s, cpu {cpu_times[variant][-1]:.2f} s", flush=True)

    median = {v: statistics.median(t) for v, t in times.items()}
    cpu = {v: statistics.median(t) for v, t in cpu_times.items()}
    print()
    print(f"{spine_rows:,} spine rows, {entities:,} entities, {events:,} events (1x) over {DAYS} days; "
          f"{len(FUNCTIONS)} functions x {len(WINDOWS)} windows; DuckDB, {os.cpu_count()} cores; "
          f"median of {args.repeat} interleaved runs; load average before: {load_before:.1f}, "
          f"after: {os.getloadavg()[0]:.1f}")
    print()
    print("| variant | events | seconds | ratio | cpu s | cpu ratio | target |")
    print("|---|---|---|---|---|---|---|")
    rows = [  # (name, scale, variant, the variant it is compared with, target)
        ("point-in-time join, 1 view", "1x", "pit_1x", "pit_1x", "baseline"),
        ("9 window aggregations", "1x", "agg_1x", "pit_1x", "≤ 2× baseline"),
        ("9 aggregations, hand-written RANGE frames", "1x", "hand_1x", "pit_1x", "(reference)"),
        ("point-in-time join, 1 view", "2x", "pit_2x", "pit_1x", "(reference)"),
        ("9 window aggregations", "2x", "agg_2x", "agg_1x", "≤ 2.1× the 1x run"),
    ]
    for name, scale, variant, versus, target in rows:
        print(f"| {name} | {scale} | {median[variant]:.2f} | {median[variant] / median[versus]:.2f}× "
              f"| {cpu[variant]:.2f} | {cpu[variant] / cpu[versus]:.2f}× | {target} |")


def same_values(ours, theirs) -> str:
    """Whether two results hold the same rows in the same order (floats to 1e-9 relative)."""
    import numpy as np

    if ours.num_rows != theirs.num_rows or ours.num_columns != theirs.num_columns:
        return f"NO: shapes {ours.shape} and {theirs.shape}"
    for i in range(ours.num_columns):
        a, b = ours.column(i).to_numpy(zero_copy_only=False), theirs.column(i).to_numpy(zero_copy_only=False)
        if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
            a, b = a.astype(float), b.astype(float)
            if not np.allclose(a, b, rtol=1e-9, atol=0, equal_nan=True):
                return f"NO: column {ours.column_names[i]} differs"
        elif not (a == b).all():
            return f"NO: column {ours.column_names[i]} differs"
    return "yes, row for row"


if __name__ == "__main__":
    main()
