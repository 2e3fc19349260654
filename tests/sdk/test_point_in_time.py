"""The point-in-time join, on DuckDB and Postgres, against the brute-force reference.

Property tests draw feature rows and spines full of edge cases (rows exactly at t and
exactly ttl old, ties, NULLs, unknown entities, duplicate spine rows, zoned spines) and
compare ``get_historical_features`` with tests/support/reference.py. Example tests below spell
each rule out with a hand-computed answer. The repos are built once a session
(tests/support/pit_harness.py); each example only refills the built feature tables.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from support.pit_harness import (
    BASE,
    CUSTOMERS,
    DRIVERS,
    GRID,
    MICROSECOND,
    NATIVE,
    REQUESTS,
    SUBSET,
    VALUES,
    VIEWS,
    ZONES,
    check,
    entity_df,
)
from support.reference import CREATED, EVENT

pytest_plugins = ["support.pit_harness", "support.spark_pit"]

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)

# ---- strategies ---------------------------------------------------------------------------
# Few keys and few instants, so that ties and boundary hits are the common case: the grid
# is 30 minutes apart and the ttls are 1 h and 2 h, so "exactly ttl old" and "one
# microsecond older" occur as often as "exactly at t".
instants = st.sampled_from(GRID) | st.sampled_from([t - MICROSECOND for t in GRID]) | st.sampled_from(
    [t + MICROSECOND for t in GRID]
)


def created_times(event: dt.datetime) -> st.SearchStrategy:
    """NULL, the event time, or a time just or well after it (a backfill) or before it."""
    return st.none() | st.sampled_from([event, event + MICROSECOND, event + 30 * MINUTE, event - HOUR]) | instants


@st.composite
def view_rows(draw, view: str) -> list[dict]:
    keys, features, _, _ = VIEWS[view]
    rows: list[dict] = []
    for _ in range(draw(st.integers(0, 8))):
        tie = draw(st.sampled_from(["none", "event", "full"])) if rows else "none"
        if tie == "none":
            row = {k: draw(st.sampled_from(DRIVERS if k == "driver_id" else CUSTOMERS)) for k in keys}
            row[EVENT] = draw(instants)
            row[CREATED] = draw(created_times(row[EVENT]))
        else:  # same keys and event time as an earlier row; "full" keeps its created time too
            row = dict(draw(st.sampled_from(rows)))
            if tie == "event":
                row[CREATED] = draw(created_times(row[EVENT]))
        for feature, dtype in features:
            row[feature] = draw(st.sampled_from(VALUES[dtype]))
        rows.append(row)
    return rows


@st.composite
def all_rows(draw) -> dict[str, list[dict]]:
    return {view: draw(view_rows(view)) for view in VIEWS}


@st.composite
def spine_row(draw, rows: dict[str, list[dict]], label: str) -> dict:
    """A spine row: random, or anchored on a feature row (its keys, and a time exactly at its
    event, exactly ttl after it, a microsecond past that, or a microsecond before it)."""
    row = {
        "driver_id": draw(st.sampled_from([*DRIVERS, 4, None])),
        "customer_id": draw(st.sampled_from([*CUSTOMERS, 12])),
        EVENT: draw(st.none() | instants),
        "label": label,
    }
    anchors = [(view, r) for view, view_rows_ in rows.items() for r in view_rows_]
    if anchors and draw(st.booleans()):
        view, anchor = draw(st.sampled_from(anchors))
        row.update({k: anchor[k] for k in VIEWS[view][0]})
        ttl = dt.timedelta(seconds=VIEWS[view][2])
        row[EVENT] = anchor[EVENT] + draw(st.sampled_from([dt.timedelta(0), ttl, ttl + MICROSECOND, -MICROSECOND]))
    return row


@st.composite
def spines(draw, rows: dict[str, list[dict]]) -> list[dict]:
    """Spine rows with naive UTC times: unknown entities (4, 12), NULL keys and times, duplicates."""
    spine = [draw(spine_row(rows, f"row{i}")) for i in range(draw(st.integers(0, 8)))]
    for _ in range(draw(st.integers(0, 2)) if spine else 0):  # duplicates, anywhere
        copy = dict(draw(st.sampled_from(spine)))
        spine.insert(draw(st.integers(0, len(spine))), copy)
    return spine


def edge_cases(rows: dict[str, list[dict]], spine: list[dict]) -> set[str]:
    """Which of the interesting situations this example contains."""
    found = set()
    for view, view_rows_ in rows.items():
        keys, _, ttl, _ = VIEWS[view]
        versions = [(tuple(r[k] for k in keys), r[EVENT], r[CREATED]) for r in view_rows_]
        if len(set(versions)) < len(versions):
            found.add("full tie")
        if len({v[:2] for v in versions}) < len({v for v in versions}):
            found.add("event-time tie, different created")
        if any(r[CREATED] is None for r in view_rows_):
            found.add("NULL created")
        for s in spine:
            if s[EVENT] is None or any(s.get(k) is None for k in keys):
                continue
            for key, event_time, _ in versions:
                if key == tuple(s[k] for k in keys):
                    if event_time == s[EVENT]:
                        found.add("row exactly at t")
                    if ttl and event_time == s[EVENT] - dt.timedelta(seconds=ttl):
                        found.add("row exactly ttl old")
                    if ttl and event_time == s[EVENT] - dt.timedelta(seconds=ttl) - MICROSECOND:
                        found.add("row ttl + 1us old")
    if any(s[EVENT] is None for s in spine):
        found.add("NULL spine time")
    if len({tuple(s.items()) for s in spine}) < len(spine):
        found.add("duplicate spine rows")
    return found


PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(
    rows=all_rows(),
    data=st.data(),
    zone=st.sampled_from(ZONES),
    kind=st.sampled_from(["pandas", "arrow"]),
    request_name=st.sampled_from(sorted(REQUESTS)),
    path=st.sampled_from(["whole", "pieces"]),
)
def test_matches_reference(harness, rows, data, zone, kind, request_name, path):
    """``path``: the whole call rendered by dbt, or the views' pieces (a feature set never asked before)."""
    spine = data.draw(spines(rows), label="spine")
    for label in edge_cases(rows, spine):
        event(label)  # `pytest --hypothesis-show-statistics` shows how often each edge is hit
    harness.load(rows)
    frame, seen = entity_df(spine, zone, kind)
    result = harness.historical(frame, REQUESTS[request_name], path)
    check(result, seen, spine, REQUESTS[request_name], rows)


# ---- examples, one rule each ----------------------------------------------------------------
def drv(driver_id: int, event: dt.datetime, f_int: int | None, created: dt.datetime | None = None,
        f_str: str | None = "x", f_float: float | None = 0.5) -> dict:
    return {"driver_id": driver_id, EVENT: event, CREATED: created, "f_int": f_int, "f_str": f_str, "f_float": f_float}


def spine_of(*rows: tuple) -> list[dict]:
    """Spine rows from (driver_id, customer_id, time) tuples, labelled in order."""
    return [{"driver_id": d, "customer_id": c, EVENT: t, "label": f"row{i}"} for i, (d, c, t) in enumerate(rows)]


def features(harness, rows, spine, request, zone=None, kind="arrow") -> list[dict]:
    """Load ``rows``, run the SDK on ``spine``, check it against the reference, return the features."""
    harness.load(rows)
    frame, seen = entity_df(spine, zone, kind)
    result = harness.historical(frame, request)
    check(result, seen, spine, request, rows)
    return result.drop_columns(seen.column_names).to_pylist()


T = BASE + 2 * HOUR


def test_row_exactly_at_t_counts_and_a_later_one_does_not(harness):
    rows = {"drv": [drv(1, T - HOUR, 1), drv(1, T, 2), drv(1, T + MICROSECOND, 3)]}
    got = features(harness, rows, spine_of((1, 10, T), (1, 10, T - MICROSECOND)), (("drv:f_int",), False))
    assert got == [{"f_int": 2}, {"f_int": 1}]


def test_nanosecond_spine_times_are_floored_to_microseconds(harness):
    """Warehouses keep microseconds; DuckDB truncated nanoseconds where Postgres rounded them."""
    import pandas as pd

    harness.load({"drv": [drv(1, T, 2), drv(1, T + MICROSECOND, 3)]})
    for zone in (None, "Europe/Amsterdam"):
        moment = pd.Timestamp(T, tz="UTC").tz_convert(zone) if zone else pd.Timestamp(T)
        frame = pd.DataFrame({"driver_id": [1], "customer_id": [10], EVENT: [moment + pd.Timedelta(nanoseconds=999)]})
        result = harness.historical(frame, (("drv:f_int",), False))
        assert result.column("f_int").to_pylist() == [2], zone


def test_ttl_bounds_are_inclusive(harness):
    # drv has ttl 1h: a row exactly 1 h old counts, one a microsecond older does not
    rows = {"drv": [drv(1, T - HOUR, 7), drv(2, T - HOUR - MICROSECOND, 8)]}
    got = features(harness, rows, spine_of((1, 10, T), (2, 10, T)), (("drv:f_int",), False))
    assert got == [{"f_int": 7}, {"f_int": None}]


def test_ttl_zero_is_unlimited(harness):
    rows = {"cust": [{"customer_id": 10, EVENT: T - dt.timedelta(days=3650), CREATED: None, "c_bool": True, "c_int": 5}]}
    got = features(harness, rows, spine_of((1, 10, T), (1, 11, T)), (("cust",), False))
    assert got == [{"c_bool": True, "c_int": 5}, {"c_bool": None, "c_int": None}]


def test_event_tie_goes_to_the_latest_created_and_null_created_is_oldest(harness):
    rows = {"drv": [
        drv(1, T, 1, created=T + HOUR),
        drv(1, T, 2, created=T + 2 * HOUR),  # written last: wins, even though created after t
        drv(1, T, 3, created=None),
        drv(2, T, 4, created=None),
        drv(2, T, 5, created=BASE - dt.timedelta(days=400)),  # any created time beats NULL
    ]}
    got = features(harness, rows, spine_of((1, 10, T), (2, 10, T)), (("drv:f_int",), False))
    assert got == [{"f_int": 2}, {"f_int": 5}]


def test_full_tie_goes_to_the_greatest_feature_tuple(harness):
    # same key, event and created time: compare (f_int, f_str, f_float) in schema order,
    # NULL above every value, strings byte-wise ("a" > "B", although a dictionary says B > a)
    rows = {"drv": [
        drv(1, T, 1, f_str="z"), drv(1, T, 2, f_str="B"), drv(1, T, 2, f_str="a"), drv(1, T, 0, f_str=None),
        drv(2, T, None, f_str="q", f_float=1.0), drv(2, T, None, f_str="q", f_float=None), drv(2, T, 9),
    ]}
    spine = spine_of((1, 10, T), (2, 10, T))
    got = features(harness, rows, spine, (("drv",), False))
    assert got == [{"f_int": 2, "f_str": "a", "f_float": 0.5}, {"f_int": None, "f_str": "q", "f_float": None}]
    # asking for fewer features, or in another order, does not change which row wins
    got = features(harness, rows, spine, (("drv:f_float", "drv:f_str"), False))
    assert got == [{"f_float": 0.5, "f_str": "a"}, {"f_float": None, "f_str": "q"}]


def test_no_rows_null_time_and_duplicate_spine_rows(harness):
    rows = {"drv": [drv(1, T - MINUTE, 1)]}
    spine = spine_of((1, 10, T), (4, 10, T), (1, 10, None), (1, 10, T), (None, 10, T))
    spine[3]["label"] = "row0"  # an exact duplicate of the first row
    got = features(harness, rows, spine, (("drv:f_int",), False), kind="pandas")
    assert got == [{"f_int": 1}, {"f_int": None}, {"f_int": None}, {"f_int": 1}, {"f_int": None}]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York"])
def test_zoned_spine_times_are_instants(harness, zone):
    # a row 15 minutes before t (UTC); in local wall-clock terms t is hours away from it
    rows = {"drv": [drv(1, T - 15 * MINUTE, 1), drv(1, T + 15 * MINUTE, 2)]}
    for kind in ("pandas", "arrow"):
        got = features(harness, rows, spine_of((1, 10, T)), (("drv:f_int",), False), zone=zone, kind=kind)
        assert got == [{"f_int": 1}]


def test_filter_by_created_hides_rows_written_after_t(harness):
    rows = {
        "drv_fc": [
            {"driver_id": 1, EVENT: T - 30 * MINUTE, CREATED: T - 20 * MINUTE, "f_int": 1, "f_str": "a"},
            {"driver_id": 1, EVENT: T - 10 * MINUTE, CREATED: T + MINUTE, "f_int": 2, "f_str": "b"},  # backfilled
            {"driver_id": 2, EVENT: T - 10 * MINUTE, CREATED: None, "f_int": 3, "f_str": "c"},  # NULL created: visible
            {"driver_id": 3, EVENT: T - 10 * MINUTE, CREATED: T, "f_int": 4, "f_str": "d"},  # written exactly at t
        ],
        "drv": [drv(1, T - 10 * MINUTE, 5, created=T + MINUTE)],  # the same row without the filter
    }
    spine = spine_of((1, 10, T), (1, 10, T + MINUTE), (2, 10, T), (3, 10, T))
    got = features(harness, rows, spine, (("drv:f_int", "drv_fc:f_int"), True))
    assert [(r["drv__f_int"], r["drv_fc__f_int"]) for r in got] == [(5, 1), (5, 2), (None, 3), (None, 4)]


def test_composite_keys_and_several_entities(harness):
    rows = {
        "pair": [{"driver_id": 1, "customer_id": 10, EVENT: T, CREATED: None, "p_str": "d1c10", "p_int": 1},
                 {"driver_id": 1, "customer_id": 11, EVENT: T, CREATED: None, "p_str": "d1c11", "p_int": 2}],
        "cust": [{"customer_id": 11, EVENT: T, CREATED: None, "c_bool": False, "c_int": 3}],
        "drv": [drv(2, T, 4)],
    }
    spine = spine_of((1, 10, T), (1, 11, T), (2, 11, T), (2, 12, T))
    got = features(harness, rows, spine, (("pair:p_str", "cust:c_int", "drv:f_int"), False))
    assert got == [
        {"p_str": "d1c10", "c_int": None, "f_int": None},
        {"p_str": "d1c11", "c_int": 3, "f_int": None},
        {"p_str": None, "c_int": 3, "f_int": 4},
        {"p_str": None, "c_int": None, "f_int": 4},
    ]


def test_full_feature_names_prefix_every_feature(harness):
    rows = {"drv": [drv(1, T, 1, f_str="plain")],
            "drv_fc": [{"driver_id": 1, EVENT: T, CREATED: None, "f_int": 2, "f_str": "filtered"}]}
    got = features(harness, rows, spine_of((1, 10, T)), SUBSET)
    assert got == [{"drv__f_str": "plain", "drv_fc__f_str": "filtered", "cust__c_int": None}]


def test_spine_time_column_of_another_name(harness):
    # the only timestamp column of the entity_df is the one joined on; it comes back as given
    from zoneinfo import ZoneInfo

    harness.load({"drv": [drv(1, T - MINUTE, 1), drv(1, T + MINUTE, 2)]})
    paris = ZoneInfo("Europe/Paris")
    spine = pa.table({
        "driver_id": pa.array([1, 1], pa.int64()),
        "requested_at": pa.array([T.replace(tzinfo=dt.timezone.utc).astimezone(paris), None], pa.timestamp("us", tz="Europe/Paris")),
    })
    result = harness.historical(spine, (("drv:f_int",), False))
    assert result.select(["driver_id", "requested_at"]).equals(spine)
    assert result.column("f_int").to_pylist() == [1, None]


def test_worked_example_of_docs_point_in_time(harness):
    """The worked example of docs/point-in-time.md (conv_rate is f_float; drv has ttl 1h)."""
    at = lambda hour, minute=0, second=0, micro=0: dt.datetime(2024, 3, 31, hour, minute, second, micro)  # noqa: E731
    history = [(at(9), at(9, 5), 0.1, 1), (at(10), at(10, 1), 0.2, 2), (at(10), at(10, 30), 0.3, 3),
               (at(10), at(10, 30), 0.4, 4)]
    rows = {
        "drv": [drv(1, e, 0, created=c, f_str="x", f_float=v) for e, c, v, _ in history],
        "drv_fc": [{"driver_id": 1, EVENT: e, CREATED: c, "f_int": n, "f_str": "x"} for e, c, _, n in history],
    }
    times = [at(9, 59, 59), at(10), at(11), at(11, 0, 0, 1), at(10, 15)]
    got = features(harness, rows, spine_of(*((1, 10, t) for t in times)), (("drv:f_float", "drv_fc:f_int"), False))
    assert [r["f_float"] for r in got] == [0.1, 0.4, 0.4, None, 0.4]
    # filter_by_created_timestamp: 4 is the 0.4 row, 1 the 0.1 row, 2 the 0.2 row
    assert [r["f_int"] for r in got] == [1, 1, 4, None, 2]


def test_empty_spine(harness):
    got = features(harness, {"drv": [drv(1, T, 1)]}, [], NATIVE)
    assert got == []


# ---- the entity_df as the user gives it -------------------------------------------------------
def test_to_df_gives_the_entity_df_back_as_given(harness):
    """Every column keeps its pandas dtype, odd names and unconvertible objects included, and the index stays."""
    import pandas as pd

    harness.load({"drv": [drv(1, T - MINUTE, 1), drv(2, T - MINUTE, None)]})
    frame = pd.DataFrame({
        "driver_id": pd.array([1, None, 2, 1], dtype="Int64"),
        EVENT: pd.to_datetime([T, T, T, None]).tz_localize("UTC").tz_convert("Europe/Amsterdam"),
        "label": pd.array([True, None, False, True], dtype="boolean"),
        "weight": pd.array([1, 2, None, 4], dtype="Int32"),
        "wait": pd.to_timedelta([1, 2, None, 4], unit="s"),
        "city": pd.Categorical(["a", "b", None, "a"], categories=["b", "a", "z"]),
        "mixed": [1, "a", None, 2.5],  # pyarrow cannot convert this column; it never needs to
        'we"ird': [1, 2, 3, 4],
        "__fh_ts": [1, 2, 3, 4],
    }, index=pd.Index([40, 10, 30, 20], name="request_id"))  # as after filtering: not 0..n-1
    result = harness.store().get_historical_features(frame, ["drv:f_int"]).to_df()
    pd.testing.assert_frame_equal(result.drop(columns=["f_int"]), frame)
    assert str(result["f_int"].dtype) == "Int64"
    assert result["f_int"].isna().tolist() == [False, True, True, True]
    assert result["f_int"].iloc[0] == 1
    # so features line up with the labels they belong to, whatever the index
    assert result.loc[40, "f_int"] == 1


def test_join_keys_are_cast_to_the_entity_type(harness):
    """pandas makes an int64 key with a missing value float64, and one with no value at all
    an object column of None; both join as the entity's int64 keys on every warehouse."""
    import pandas as pd

    harness.load({"drv": [drv(1, T - MINUTE, 7)]})
    store = harness.store()
    floats = pd.DataFrame({"driver_id": [1.0, float("nan")], EVENT: pd.to_datetime([T, T])})
    result = store.get_historical_features(floats, ["drv:f_int"]).to_df()
    assert result["driver_id"].dtype == "float64"
    assert result["f_int"].isna().tolist() == [False, True]
    assert result["f_int"].iloc[0] == 7
    unknown = pd.DataFrame({"driver_id": [None, None], EVENT: pd.to_datetime([T, T])})
    result = store.get_historical_features(unknown, ["drv:f_int"]).to_df()
    assert result["driver_id"].tolist() == [None, None]
    assert result["f_int"].isna().all()


def test_entity_df_of_the_wrong_kind_is_one_sentence(harness):
    """The same mistakes give the same sentence on every warehouse, before any query runs."""
    import pandas as pd

    from featurehouse.errors import RequestError

    store = harness.store()
    good = {"driver_id": [1, 2], EVENT: pd.to_datetime([T, T])}
    cases = [
        ({**good, "driver_id": ["1", "2"]},
         r"^entity_df column 'driver_id' holds string values, but entity 'driver' has int64 join keys"),
        ({**good, "driver_id": [1.5, 2.0]},
         r"^entity_df column 'driver_id' has values that are not int64 join keys of entity 'driver': "),
        ({**good, EVENT: ["2024-03-31 02:00:00", "soon"]},
         r"^entity_df column 'event_timestamp' holds string values, not timestamps; convert it first"),
    ]
    for columns, message in cases:
        with pytest.raises(RequestError, match=message):
            store.get_historical_features(pd.DataFrame(columns), ["drv:f_int"]).to_df()
    twice = pd.DataFrame([[1, T, 1, 2]], columns=["driver_id", EVENT, "x", "x"])
    with pytest.raises(RequestError, match=r"^entity_df has more than one column named 'x'$"):
        store.get_historical_features(twice, ["drv:f_int"]).to_df()
    # to_arrow() needs every column as Arrow: a column pyarrow cannot convert is named
    mixed = pd.DataFrame({**good, "mixed": [1, "a"]})
    with pytest.raises(RequestError, match=r"^entity_df cannot be converted to Arrow: .*column mixed"):
        store.get_historical_features(mixed, ["drv:f_int"]).to_arrow()


def test_sql_entity_df(harness):
    from featurehouse.errors import RequestError, WarehouseError

    harness.load({"drv": [drv(1, T - MINUTE, 1)]})
    harness.load_spine(spine_of((1, 10, T), (2, 10, T)))
    store = harness.store()
    spine = f'"{harness.schema}"."spine"'
    # a query copied from a SQL console, with its semicolon
    result = store.get_historical_features(f"select * from {spine} order by label;\n", ["drv:f_int"]).to_arrow()
    assert result.column("f_int").to_pylist() == [1, None]
    text_time = f"select driver_id, cast(event_timestamp as {'varchar' if harness.engine == 'duckdb' else 'text'}) " \
                f"as event_timestamp from {spine}"
    with pytest.raises(RequestError, match=r"^entity_df column 'event_timestamp' holds string values, not timestamps"):
        store.get_historical_features(text_time, ["drv:f_int"]).to_arrow()
    with pytest.raises(RequestError, match=r"^entity_df may not have a column named '__fh_ts'"):
        store.get_historical_features(f"select *, 1 as __fh_ts from {spine}", ["drv:f_int"]).to_arrow()
    with pytest.raises(WarehouseError, match=r"^the entity_df query failed: "):
        store.get_historical_features(f'select * from "{harness.schema}"."no_such_table"', ["drv:f_int"]).to_arrow()


def test_a_warehouse_behind_the_specs_says_what_to_run(tmp_path):
    """Specs edited or compiled without a 'dbt build' after, or models/featurehouse/ missing: one sentence."""
    import shutil

    import pandas as pd

    from featurehouse import FeatureStore
    from featurehouse.compile import compiler
    from featurehouse.errors import CompileError, WarehouseError
    from featurehouse.spec.repo import load_repo
    from support.repos import run_dbt, write_repo

    spec = """
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.csv, timestamp_field: event_timestamp}
feature_views:
  - name: stats
    entities: [driver]
    source: stats
    schema:
      - {name: conv_rate, dtype: float64}
"""
    root = write_repo(tmp_path, {"stats.yml": spec})
    (root / "data" / "stats.csv").write_text("driver_id,event_timestamp,conv_rate\n1,2024-01-01 10:00:00,0.5\n")

    def compile_specs() -> None:
        compiler.write(root / "models" / "featurehouse", compiler.compile_repo(load_repo(root), "duckdb"))

    compile_specs()
    run_dbt(root, "build")
    spine = pd.DataFrame({"driver_id": [1], EVENT: pd.to_datetime(["2024-01-02"])})
    assert FeatureStore(root).get_historical_features(spine, ["stats:conv_rate"]).to_df()["conv_rate"].tolist() == [0.5]

    (root / "feature_specs" / "stats.yml").write_text(
        spec + "      - {name: doubled, dtype: float64, expression: conv_rate * 2}\n"
        "  - {name: other, entities: [driver], source: stats, schema: [{name: conv_rate, dtype: float64}]}\n"
    )
    compile_specs()
    with pytest.raises(WarehouseError, match=r"""^the warehouse table "main"."fv_stats" of feature view 'stats' has no """
                       r"column 'doubled': the specs changed after the last 'dbt build'; run 'featurehouse compile' "
                       r"and 'dbt build'$"):
        # the full-tie rule reads every feature of the view, so asking for an old one fails too
        FeatureStore(root).get_historical_features(spine, ["stats:conv_rate"]).to_df()
    with pytest.raises(WarehouseError, match=r"""^feature view 'other' has no table "main"."fv_other" in the """
                       r"warehouse; run 'dbt build'$"):
        FeatureStore(root).get_historical_features(spine, ["other:conv_rate"]).to_df()
    shutil.rmtree(root / "models" / "featurehouse")
    shutil.rmtree(root / "target" / "featurehouse")  # nothing rendered: neither this call nor its views' joins
    with pytest.raises(CompileError, match=r"the dbt project has no model 'fv_other'; run 'featurehouse compile'"):
        FeatureStore(root).get_historical_features(spine, ["other:conv_rate"], full_feature_names=True).to_df()


def test_one_output_name_from_two_views_needs_full_feature_names(tmp_path):
    """Names equal but for case clash too: DuckDB, Postgres and DataFrames would see one column twice."""
    import pandas as pd

    from featurehouse import FeatureStore
    from featurehouse.errors import RequestError
    from support.repos import write_repo

    root = write_repo(tmp_path, {"stats.yml": """
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.csv, timestamp_field: event_timestamp}
feature_views:
  - {name: hourly, entities: [driver], source: stats, schema: [{name: conv_rate, dtype: float64}]}
  - {name: daily, entities: [driver], source: stats, schema: [{name: Conv_Rate, dtype: float64}]}
"""})
    store = FeatureStore(root)
    spine = pd.DataFrame({"driver_id": [1], EVENT: pd.to_datetime(["2024-01-02"])})
    message = r"^feature 'Conv_Rate' is requested from both 'hourly' and 'daily'; ask for full_feature_names=True"
    with pytest.raises(RequestError, match=message):  # checked before the warehouse is asked anything
        store.get_historical_features(spine, ["hourly:conv_rate", "daily:Conv_Rate"])
    with pytest.raises(RequestError, match=message):
        store.get_online_features(["hourly:conv_rate", "daily:Conv_Rate"], [{"driver_id": 1}])


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_training_set_model_equals_the_sdk(harness, request_name):
    """The ts_<name> model dbt builds from a spine table equals the SDK's answer for it."""
    import random

    from support.pit_harness import random_rows, random_spine
    from support.repos import run_dbt

    rng = random.Random(request_name)
    rows = random_rows(rng, per_view=40)
    spine = random_spine(rng, size=40)
    for i, row in enumerate(spine):
        row["label"] = f"row{i:02d}"  # unique, to line the model's rows up with the SDK's
    harness.load(rows)
    harness.load_spine(spine)
    run_dbt(harness.root, "run", "--select", f"ts_{request_name}",
            target="dev" if harness.engine == "duckdb" else "pg")
    model = harness.query(f'select * from "{harness.schema}"."ts_{request_name}" order by label')
    request = REQUESTS[request_name]
    frame, seen = entity_df(spine, None, "arrow")
    sdk = harness.historical(frame, request)
    check(sdk, seen, spine, request, rows)
    # a SQL entity_df runs the same macro over the same table
    sql = harness.historical(f'select * from "{harness.schema}"."spine"', request)
    assert sorted(sql.to_pylist(), key=lambda r: r["label"]) == sorted(sdk_rows_utc(sdk), key=lambda r: r["label"])
    assert model.column_names == sdk.column_names
    assert model_rows(model) == sdk_rows_utc(sdk.sort_by("label"))


def sdk_rows_utc(table: pa.Table) -> list[dict]:
    """Rows with naive timestamps read as UTC, as a SQL spine or a dbt model returns them."""
    return [{k: v.replace(tzinfo=dt.timezone.utc) if isinstance(v, dt.datetime) and v.tzinfo is None else v
             for k, v in row.items()} for row in table.to_pylist()]


def model_rows(table: pa.Table) -> list[dict]:
    return sdk_rows_utc(table)


# ---- utc_timestamp: how every spine and feature timestamp is read -------------------------------
UTC_CASES = {
    # input SQL -> the naive UTC instant it names
    "duckdb": {
        "timestamp '2024-03-31 02:00:00.000001'": dt.datetime(2024, 3, 31, 2, 0, 0, 1),
        "timestamptz '2024-03-31 04:00:00.000001+02'": dt.datetime(2024, 3, 31, 2, 0, 0, 1),
        # pandas' zoned and naive timestamps arrive as TIMESTAMPTZ_NS / TIMESTAMP_NS: floored to µs
        "'2024-03-31 04:00:00.123456789+02'::timestamptz_ns": dt.datetime(2024, 3, 31, 2, 0, 0, 123456),
        "'1960-01-01 00:00:00.000000999'::timestamp_ns": dt.datetime(1960, 1, 1),
        "date '2024-03-31'": dt.datetime(2024, 3, 31),
        "timestamp '9999-12-31 23:59:59.999999'": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "null::timestamptz_ns": None,
    },
    "postgres": {
        "timestamp '2024-03-31 02:00:00.000001'": dt.datetime(2024, 3, 31, 2, 0, 0, 1),
        "timestamptz '2024-03-31 04:00:00.000001+02'": dt.datetime(2024, 3, 31, 2, 0, 0, 1),
        "date '2024-03-31'": dt.datetime(2024, 3, 31),
        "null::timestamptz": None,
    },
}


def test_utc_timestamp_reads_instants_whatever_the_session_zone(harness):
    from featurehouse.dbt.profile import load_target
    from featurehouse.dbt.rendering import render

    target = load_target(harness.root, "dev" if harness.engine == "duckdb" else "pg", harness.root)
    cases = UTC_CASES[harness.engine]
    # one Jinja expression, so dbt renders once: utc_timestamp('x0') ~ ' as c0, ' ~ ...
    call = " ~ ', ' ~ ".join(f"featurehouse.utc_timestamp('x{i}') ~ ' as c{i}'" for i in range(len(cases)))
    selects = render(harness.root, target, call)
    inputs = ", ".join(f"{sql} as x{i}" for i, sql in enumerate(cases))
    query = f"select {selects} from (select {inputs}) as q"
    if harness.engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("set TimeZone = 'America/New_York'").fetchall()
        got = list(con.execute(query).fetchone())
        con.close()
    else:
        with harness._postgres() as con:
            con.execute("set TimeZone = 'America/New_York'")
            got = list(con.execute(query).fetchone())
    assert got == list(cases.values())


# ---- the same property on Spark (smaller: a Spark query costs ~1 s) ----------------------------
@pytest.mark.spark
@settings(PROPERTY_SETTINGS, max_examples=6)
@given(
    rows=all_rows(),
    data=st.data(),
    zone=st.sampled_from(ZONES),
    kind=st.sampled_from(["pandas", "arrow"]),
    request_name=st.sampled_from(sorted(REQUESTS)),
)
def test_spark_matches_reference(spark_harness, rows, data, zone, kind, request_name):
    spine = data.draw(spines(rows), label="spine")
    spark_harness.load(rows)
    frame, seen = entity_df(spine, zone, kind)
    result = spark_harness.historical(frame, REQUESTS[request_name])
    check(result, seen, spine, REQUESTS[request_name], rows)
