"""The winners table each DuckDB feature view model writes beside it (macros/event_time_winners.sql).

Training sets on DuckDB join ``fv_<view>__winners`` (the tie-break's row per key and event
time) instead of ``fv_<view>`` (docs/decisions/0032-event-time-winners.md). What a user
relies on: it holds exactly the rule's winners, it is rewritten by every build of its model
(also ``dbt run -s fv_<view>`` alone), a warehouse without it says what to run, and nothing
else gets a hook or a name that could collide with it. The point-in-time property tests
(test_point_in_time.py) check the join over it against the brute-force reference.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from support.reference import View, point_in_time_join, winner
from support.repos import run_dbt, write_repo

EVENT, CREATED = "event_timestamp", "created_timestamp"
BASE = dt.datetime(2026, 3, 1)
SPEC = """
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.csv, timestamp_field: event_timestamp, created_timestamp_column: created}
feature_views:
  - name: stats
    entities: [driver]
    source: stats
    ttl: 2h
    schema:
      - {name: conv_rate, dtype: float64}
      - {name: trips, dtype: int64}
"""


def _rows(seed: int) -> list[dict]:
    """Rows crowded onto 3 drivers (and a NULL one), 3 event hours and 2 created minutes: ties on
    event time, on created time, full ties broken by the features, NULL created and NULL values."""
    rng = random.Random(seed)
    rows = []
    for _ in range(60):
        event = BASE + dt.timedelta(hours=rng.randrange(3))
        rows.append({
            "driver_id": None if rng.random() < 0.05 else rng.randrange(3),
            EVENT: event,
            CREATED: None if rng.random() < 0.2 else event + dt.timedelta(minutes=rng.randrange(2)),
            "conv_rate": None if rng.random() < 0.3 else rng.choice([0.25, 0.5, -1.5]),
            "trips": rng.randrange(3),
        })
    return rows


def _write_csv(root, rows: list[dict]) -> None:
    def text(value) -> str:
        return "" if value is None else str(value)

    lines = ["driver_id,event_timestamp,created,conv_rate,trips"]
    lines += [",".join(text(r[c]) for c in ("driver_id", EVENT, CREATED, "conv_rate", "trips")) for r in rows]
    (root / "data" / "stats.csv").write_text("\n".join(lines) + "\n")


def _view(rows: list[dict]) -> View:
    return View("stats", ("driver_id",), ("conv_rate", "trips"), 7200, rows=rows)


def _winners_table(root) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    try:
        return con.sql('select * from main."fv_stats__winners" order by all').to_arrow_table().to_pylist()
    finally:
        con.close()


def _expected_winners(rows: list[dict]) -> list[dict]:
    """Per (driver, event time): the reference's winner at that very instant, without ttl."""
    view = View("stats", ("driver_id",), ("conv_rate", "trips"), rows=rows)
    instants = sorted({(r["driver_id"], r[EVENT]) for r in rows if r["driver_id"] is not None})
    expected = []
    for driver, event in instants:
        row = winner(view, (driver,), event)
        expected.append({"driver_id": driver, EVENT: event, "conv_rate": row["conv_rate"], "trips": row["trips"]})
    return expected


@pytest.fixture
def built(tmp_path):
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    root = write_repo(tmp_path, {"stats.yml": SPEC})
    _write_csv(root, _rows(1))
    compiler.write(root / "models" / "featurehouse", compiler.compile_repo(load_repo(root), "duckdb"))
    run_dbt(root, "run")  # not build: the NULL driver is on purpose, and dbt's not_null test would fail it
    return root


def _training_set(root, spine: list[dict]) -> list[dict]:
    import pandas as pd

    from featurehouse import FeatureStore

    frame = pd.DataFrame(spine)
    frame[EVENT] = pd.to_datetime(frame[EVENT])
    table = FeatureStore(root).get_historical_features(frame, ["stats:conv_rate", "stats:trips"]).to_arrow()
    return table.to_pylist()


def test_the_winners_are_the_rule_s_and_follow_every_build_of_their_model(built) -> None:
    assert _winners_table(built) == _expected_winners(_rows(1))
    spine = [{"driver_id": d, EVENT: BASE + dt.timedelta(minutes=m)} for d in range(4) for m in (0, 59, 60, 150, 299)]
    assert _training_set(built, spine) == point_in_time_join(spine, [_view(_rows(1))])

    # new source rows, and only the view's own model rebuilt: its winners come with it
    _write_csv(built, _rows(2))
    run_dbt(built, "run", "--select", "fv_stats")
    assert _winners_table(built) == _expected_winners(_rows(2))
    assert _training_set(built, spine) == point_in_time_join(spine, [_view(_rows(2))])


def test_a_warehouse_without_the_winners_table_says_what_to_run(built) -> None:
    import duckdb

    from featurehouse.errors import WarehouseError

    con = duckdb.connect(str(built / "data" / "warehouse.duckdb"))
    con.execute('drop table main."fv_stats__winners"')
    con.close()
    with pytest.raises(WarehouseError, match=r"^feature view 'stats' has no table fv_stats__winners beside "
                                             r".*run 'featurehouse compile' and 'dbt build'$"):
        _training_set(built, [{"driver_id": 1, EVENT: BASE}])


def test_only_duckdb_views_that_take_the_latest_row_have_winners(tmp_path) -> None:
    """A created-time filter and window aggregations need every row; other engines' joins do not
    read the table, so their models write none and their training sets do not ask for it."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    spec = SPEC.replace("path: data/stats.csv", "table: main.stats") + """
  - name: visible
    entities: [driver]
    source: stats
    filter_by_created_timestamp: true
    schema: [{name: conv_rate, dtype: float64}]
  - name: windows
    entities: [driver]
    source: stats
    aggregations: [{column: trips, function: sum, window: 1h}]
training_sets:
  - name: together
    spine: {table: main.labels}
    features: [stats:conv_rate, visible:conv_rate, windows:trips_sum_1h]
    full_feature_names: true
"""
    root = write_repo(tmp_path, {"stats.yml": spec})
    repo = load_repo(root)
    duckdb_files = compiler.compile_repo(repo, "duckdb")
    hooked = sorted(name for name, text in duckdb_files.items() if "featurehouse.event_time_winners(" in text)
    assert hooked == ["fv_stats.sql"]
    assert duckdb_files["ts_together.sql"].count("'event_time_winners': true") == 1
    for dialect in ("postgres", "spark"):
        files = compiler.compile_repo(repo, dialect)
        assert not any("event_time_winners" in text for text in files.values()), dialect


def test_a_view_name_that_could_be_another_view_s_winners_table_is_refused(tmp_path) -> None:
    from featurehouse.errors import SpecError
    from featurehouse.spec.repo import load_repo

    spec = SPEC + """
  - name: stats__winners
    entities: [driver]
    source: stats
    schema: [{name: trips, dtype: int64}]
"""
    root = write_repo(tmp_path, {"stats.yml": spec})
    with pytest.raises(SpecError, match=r"feature view 'stats__winners' ends in '__winners', which is reserved"):
        load_repo(root)


def test_a_feature_named_like_the_join_s_own_columns_is_refused(tmp_path) -> None:
    """The winners CTE names the event time __fh_e beside the features (and the struct path has
    __fh_key, __fh_probe, __fh_row): a feature of that name would make the query ambiguous."""
    from featurehouse.errors import SpecError
    from featurehouse.spec.repo import load_repo

    root = write_repo(tmp_path, {"stats.yml": SPEC.replace("name: trips", "name: __fh_e")})
    with pytest.raises(SpecError, match=r"feature '__fh_e' starts with '__fh_', which featurehouse reserves"):
        load_repo(root)
