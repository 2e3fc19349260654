"""The training-set benchmark compares like with like (docs/decisions/0015).

bench/bench_historical.py times get_historical_features against a hand-written DuckDB
query and reports the ratio; the ratio only means something if that query returns the
rows the rule asks for, including full ties (same driver, event and created time) and
NULL created times. The bench checks this on its own data; these tests check it against
the brute-force reference (tests/support/reference.py) on small data where nearly every row is
part of a tie, so a baseline that breaks ties arbitrarily (the HUGEINT fold of event and
created time alone) could not pass.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

import pytest
from support.reference import View, point_in_time_join

BENCH = Path(__file__).resolve().parent.parent.parent / "bench"
VIEW = "stats_a"
BASE = dt.datetime(2026, 1, 1)


def _bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_historical
    finally:
        sys.path.remove(str(BENCH))
    return bench_historical


def _rows(rng: random.Random, count: int) -> list[dict]:
    """Feature rows crowded onto 3 drivers, 4 event hours and 2 created minutes."""
    names = [name for name, _ in _bench().FEATURES[VIEW]]
    rows = []
    for _ in range(count):
        event = BASE + dt.timedelta(hours=rng.randrange(4))
        created = None if rng.random() < 0.2 else event + dt.timedelta(minutes=rng.randrange(2))
        rows.append(
            {
                "driver_id": rng.randrange(3),
                "event_timestamp": event,
                "created_timestamp": created,
                names[0]: None if rng.random() < 0.3 else rng.choice([0.25, 0.5, -1.5]),
                names[1]: rng.choice([0.125, 0.75]),
                names[2]: rng.randrange(3),
            }
        )
    return rows


def _spine(rng: random.Random, count: int) -> list[dict]:
    # the bench's spine has no NULL times, and neither has this one
    return [
        {
            "driver_id": rng.randrange(4),  # driver 3 has no rows
            "event_timestamp": BASE + dt.timedelta(minutes=rng.randrange(-30, 30 * 60 + 24 * 60)),
            "label": rng.randrange(2),
        }
        for _ in range(count)
    ]


def _run(sql: str, rows: list[dict], spine: list[dict]) -> list[dict]:
    import duckdb
    import pyarrow as pa

    names = [name for name, _ in _bench().FEATURES[VIEW]]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""create table main.fv_{VIEW} (driver_id bigint, event_timestamp timestamp,
                    created_timestamp timestamp, {names[0]} float, {names[1]} float, {names[2]} bigint)""")
    con.executemany(
        f"insert into main.fv_{VIEW} values (?, ?, ?, ?, ?, ?)",
        [[row[c] for c in ("driver_id", "event_timestamp", "created_timestamp", *names)] for row in rows],
    )
    con.register(
        "spine",
        pa.Table.from_pylist(
            spine,
            schema=pa.schema(
                [("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us")), ("label", pa.int64())]
            ),
        ),
    )
    return con.sql(sql).to_arrow_table().to_pylist()


@pytest.mark.parametrize("seed", range(6))
def test_the_bench_baseline_returns_the_rule_on_full_ties(seed: int) -> None:
    bench = _bench()
    rng = random.Random(seed)
    rows, spine = _rows(rng, 300), _spine(rng, 200)
    names = tuple(name for name, _ in bench.FEATURES[VIEW])
    expected = point_in_time_join(spine, [View(VIEW, ("driver_id",), names, ttl_seconds=86400, rows=rows)])
    got = _run(bench.baseline_sql((VIEW,)), rows, spine)
    assert got == expected


def test_the_data_really_ties_on_event_and_created_time() -> None:
    """Guards the test above: most winners are part of a full tie that the features break."""
    rng = random.Random(0)
    rows = _rows(rng, 300)
    groups: dict[tuple, int] = {}
    for row in rows:
        key = (row["driver_id"], row["event_timestamp"], row["created_timestamp"])
        groups[key] = groups.get(key, 0) + 1
    assert sum(count for count in groups.values() if count > 1) > len(rows) // 2
