"""Postgres's point-in-time plans: the index probe (LEFT JOIN LATERAL ... LIMIT 1) and the
sort-based pass return the reference's rows, each forced in turn and mixed in one query.

The macros pick a plan per view (macros/postgres_point_in_time.sql, decision 0016); the
dbt var ``featurehouse_pg_plan`` forces one, and dropping a view's index makes ``auto``
pick the sort for it. Every mode asserts which plan the rendered SQL used, so that a
change of the choice cannot leave a plan untested.
"""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path

import pytest
from compile.test_aggregations import postgres_repo  # noqa: F401  (the window harness's built repo)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pit_harness import REQUESTS, VIEWS, Harness, build, check, entity_df, random_rows, random_spine
from support.repos import drop_postgres_schema, run_dbt
from test_point_in_time import all_rows, spines

pytestmark = pytest.mark.postgres

# mode -> (dbt var featurehouse_pg_plan, views whose index is dropped, views expected on the probe)
MODES = {
    "lateral": ("lateral", (), set(VIEWS)),
    "sort": ("sort", (), set()),
    "auto": ("auto", (), set(VIEWS)),
    "mixed": ("auto", ("cust", "drv_fc"), set(VIEWS) - {"cust", "drv_fc"}),
}


@pytest.fixture(scope="module")
def pg(tmp_path_factory, postgres_url: str):
    schema = f"fh_plans_{uuid.uuid4().hex[:10]}"
    harness = build("postgres", tmp_path_factory.mktemp("pit_plans"), postgres_url, schema)
    yield harness
    drop_postgres_schema(postgres_url, schema)


def as_sdk_types(model, seen):
    """A model's feature timestamps are naive UTC; the SDK's are zoned UTC (check compares types)."""
    import pyarrow as pa

    for i, field in enumerate(model.schema):
        if field.name not in seen.column_names and pa.types.is_timestamp(field.type):
            model = model.set_column(i, field.name, model.column(i).cast(pa.timestamp("us", tz="UTC")))
    return model


def _index_names(harness: Harness, view: str) -> list[str]:
    with harness._postgres() as con:
        rows = con.execute(
            "select indexname from pg_indexes where schemaname = %s and tablename = %s", (harness.schema, f"fv_{view}")
        ).fetchall()
    return [r[0] for r in rows]


def use_mode(harness: Harness, mode: str) -> set[str]:
    """Configure ``mode``; returns the views expected on the index probe."""
    plan, unindexed, lateral = MODES[mode]
    project = harness.root / "dbt_project.yml"
    text = project.read_text().split("\nvars:")[0]
    project.write_text(text + f"\nvars:\n  featurehouse_pg_plan: {plan}\n")
    for view in VIEWS:
        names = _index_names(harness, view)
        if view in unindexed:
            harness.execute(*(f'drop index "{harness.schema}"."{name}"' for name in names))
        elif not names:
            harness.execute(f'create index on {harness._table("fv_" + view)} '
                            f'({", ".join(VIEWS[view][0])}, event_timestamp)')
    # the plan is chosen when the call is rendered: start from no cached rendering
    shutil.rmtree(harness.root / "target" / "featurehouse" / "rendered", ignore_errors=True)
    return lateral


def probed_views(root: Path) -> set[str]:
    """The views the SDK's renderings read with the index probe."""
    rendered = "\n".join(p.read_text() for p in (root / "target" / "featurehouse" / "rendered").glob("*.sql"))
    return {view for view in VIEWS if f'."fv_{view}" as f\n' in rendered}


def requested_views(request_name: str) -> set[str]:
    return {ref.partition(":")[0] for ref in REQUESTS[request_name][0]}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_plan_matches_the_reference(pg, mode):
    lateral = use_mode(pg, mode)
    seen_views: set[str] = set()

    @settings(max_examples=50, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(rows=all_rows(), data=st.data(), request_name=st.sampled_from(sorted(REQUESTS)))
    def run(rows, data, request_name):
        spine = data.draw(spines(rows), label="spine")
        pg.load(rows)
        frame, seen = entity_df(spine, None, "arrow")
        result = pg.historical(frame, REQUESTS[request_name])
        check(result, seen, spine, REQUESTS[request_name], rows)
        seen_views.update(requested_views(request_name))

    run()
    assert probed_views(pg.root) == lateral & seen_views


@pytest.mark.parametrize("mode", ["lateral", "sort"])
def test_training_set_model_of_each_plan_matches_the_reference(pg, mode):
    """`dbt run` of a ts_ model (spine a table) under each plan, with many ties."""
    use_mode(pg, mode)
    rng = random.Random(mode)
    rows = random_rows(rng, per_view=60)
    spine = random_spine(rng, size=60)
    for i, row in enumerate(spine):
        row["label"] = f"row{i:02d}"
    pg.load(rows)
    pg.load_spine(spine)
    run_dbt(pg.root, "run", "--select", "ts_mixed", target="pg")
    compiled = next((pg.root / "target" / "run").rglob("ts_mixed.sql")).read_text()
    assert ("join lateral" in compiled) == (mode == "lateral")
    model = pg.query(f'select * from "{pg.schema}"."ts_mixed" order by label')
    _, seen = entity_df(spine, None, "arrow")
    check(as_sdk_types(model, seen), seen, spine, REQUESTS["mixed"], rows)


def test_auto_sorts_when_the_spine_table_outnumbers_the_history(pg):
    """A ts_ model whose spine table holds more rows (pg_class estimate) than a view's history
    is joined by the sort for that view; fewer, by the probe."""
    use_mode(pg, "auto")
    rng = random.Random(7)
    rows = random_rows(rng, per_view=30)
    pg.load(rows)
    for size, expect_lateral in ((10, True), (200, False)):
        spine = random_spine(rng, size=size)
        for i, row in enumerate(spine):
            row["label"] = f"row{i:03d}"
        pg.load_spine(spine)
        pg.execute(*(f'analyze {pg._table(t)}' for t in ["spine", *(f"fv_{v}" for v in VIEWS)]))
        run_dbt(pg.root, "run", "--select", "ts_native", target="pg")
        compiled = next((pg.root / "target" / "run").rglob("ts_native.sql")).read_text()
        assert ("join lateral" in compiled) == expect_lateral, size
        model = pg.query(f'select * from "{pg.schema}"."ts_native" order by label')
        _, seen = entity_df(spine, None, "arrow")
        check(as_sdk_types(model, seen), seen, spine, REQUESTS["native"], rows)


def test_feature_view_models_get_the_probe_index(pg):
    """`dbt build` leaves each fv_ table with a btree index led by its join keys and event time."""
    run_dbt(pg.root, "run", "--select", "fv_pair", target="pg")
    with pg._postgres() as con:
        defs = [r[0] for r in con.execute(
            "select indexdef from pg_indexes where schemaname = %s and tablename = 'fv_pair'", (pg.schema,))]
    assert any("btree (driver_id, customer_id, event_timestamp)" in d for d in defs), defs


def test_an_unknown_plan_var_is_one_sentence(pg):
    from featurehouse.errors import CompileError

    use_mode(pg, "auto")
    project = pg.root / "dbt_project.yml"
    project.write_text(project.read_text().replace("featurehouse_pg_plan: auto", "featurehouse_pg_plan: nested"))
    frame, _ = entity_df(random_spine(random.Random(1), 3), None, "arrow")
    with pytest.raises(CompileError, match="featurehouse_pg_plan is 'nested'; expected auto, lateral or sort"):
        pg.historical(frame, REQUESTS["native"])


# ---- the entity_df upload and the result fetch (featurehouse/warehouse.py) ------------------------
def _pg_warehouse(postgres_url: str, tmp_path: Path):
    from psycopg.conninfo import conninfo_to_dict

    from featurehouse.dbt.profile import DbtTarget
    from featurehouse.warehouse import connect

    parts = conninfo_to_dict(postgres_url)
    config = {"type": "postgres", "host": parts.get("host", "127.0.0.1"), "port": int(parts.get("port", 5432)),
              "user": parts.get("user", "postgres"), "password": parts.get("password", ""),
              "dbname": parts.get("dbname", "test"), "schema": "public"}
    return connect(DbtTarget("p", "p", "pg", tmp_path, config), tmp_path)


def test_spine_upload_in_bulk_keeps_every_value(postgres_url, tmp_path):
    """COPY in CSV: empty strings stay empty (not NULL), separators, quotes and newlines in keys,
    NaN and infinities, microseconds, zoned times as instants, dates and booleans."""
    import datetime as dt

    import pyarrow as pa

    from featurehouse.warehouse import SPINE_PLACEHOLDER

    utc = dt.timezone.utc
    paris = dt.timezone(dt.timedelta(hours=2))
    table = pa.table({
        "key": pa.array(["", None, 'a,"b"\nc', "\\N", "é\r\nz", "NULL"], pa.string()),
        "n": pa.array([1, None, -(2**63), 2**63 - 1, 0, 7], pa.int64()),
        "x": pa.array([float("nan"), float("inf"), float("-inf"), None, 0.1, -0.0]),
        "t": pa.array([dt.datetime(2024, 3, 31, 2, 0, 0, 1), None, dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31),
                       dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1)], pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2024, 3, 31, 4, 0, 0, 123456, tzinfo=paris), None, None, None, None,
                        dt.datetime(2024, 1, 1, tzinfo=utc)], pa.timestamp("us", tz="Europe/Paris")),
        "d": pa.array([dt.date(2024, 2, 29), None, None, None, None, None], pa.date32()),
        "b": pa.array([True, None, False, True, False, True]),
    })
    warehouse = _pg_warehouse(postgres_url, tmp_path)
    try:
        with warehouse.spine(table) as name:
            assert name == SPINE_PLACEHOLDER
            back = warehouse.arrow(f"select * from {name}")
    finally:
        warehouse.close()
    for column in ("key", "n", "t", "d", "b"):
        assert back.column(column).to_pylist() == table.column(column).to_pylist(), column
    got, want = back.column("x").to_pylist(), table.column("x").to_pylist()
    assert [str(v) for v in got] == [str(v) for v in want]
    assert back.column("tz").to_pylist() == [v and v.astimezone(utc) for v in table.column("tz").to_pylist()]


def test_queries_run_without_jit_and_leave_the_session_as_it_was(postgres_url, tmp_path):
    warehouse = _pg_warehouse(postgres_url, tmp_path)
    try:
        inside = warehouse.arrow("select current_setting('jit') as jit").column("jit").to_pylist()
        assert inside == ["off"]
        with warehouse._con.cursor() as cur:  # the connection's own setting is untouched
            cur.execute("show jit")
            server = cur.fetchone()[0]
        with warehouse._con.cursor() as cur:
            cur.execute("select setting from pg_settings where name = 'jit'")
            assert cur.fetchone()[0] == server
    finally:
        warehouse.close()


# ---- window min/max on Postgres: time buckets (macros/postgres_window_aggregation.sql) ----------
def use_extremes(built, plan: str) -> None:
    """Set the dbt var featurehouse_pg_window_extremes and drop the SDK's cached renderings."""
    project = built.root / "dbt_project.yml"
    text = project.read_text().split("\nvars:")[0]
    project.write_text(text + f"\nvars:\n  featurehouse_pg_window_extremes: {plan}\n")
    shutil.rmtree(built.root / "target" / "featurehouse" / "rendered", ignore_errors=True)


def rendered_text(root: Path) -> str:
    return "\n".join(p.read_text() for p in (root / "target" / "featurehouse" / "rendered").glob("*.sql"))


@pytest.mark.parametrize("plan", ["buckets", "range"])
def test_window_harness_matches_the_reference_on_each_extremes_plan(postgres_repo, plan):  # noqa: F811
    from compile.test_aggregations import cases, check_against_reference

    use_extremes(postgres_repo, plan)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(case=cases())
    def run(case):
        check_against_reference(postgres_repo, *case)

    run()
    assert ("__fh_x_pre" in rendered_text(postgres_repo.root)) == (plan == "buckets")


def test_auto_takes_buckets_for_windows_dense_with_events(postgres_repo):  # noqa: F811
    """Estimated events per key and window above 100 (table statistics): buckets; few
    events: the RANGE frame."""
    import datetime as dt

    from compile.test_aggregations import check_against_reference, historical

    start = dt.datetime(2024, 3, 31)
    # 2 cards, one event a second each for 2 hours: ~3600 per 1h window, ~300 per 5m window
    events = [{"card_id": 1 + i % 2, "event_timestamp": start + dt.timedelta(seconds=i // 2),
               "amount": float(i % 97) - 40.0, "merchant": "a"} for i in range(14_400)]
    spine = [{"card_id": c, "event_timestamp": start + dt.timedelta(minutes=m, microseconds=u), "label": f"r{i}"}
             for i, (c, m, u) in enumerate((c, m, u) for c in (1, 2, 3) for m in (0, 5, 59, 60, 61, 119, 200)
                                           for u in (0, 1))]
    for rows, dense in ((events, True), (events[:20], False)):
        postgres_repo.load(rows)
        postgres_repo.execute(f"analyze {postgres_repo.table('fv_card_extremes')}")
        use_extremes(postgres_repo, "auto")
        historical(postgres_repo, spine[:1], "card_extremes")
        assert ("__fh_x_pre" in rendered_text(postgres_repo.root)) == dense
    postgres_repo.load(events)
    postgres_repo.execute(f"analyze {postgres_repo.table('fv_card_extremes')}")
    use_extremes(postgres_repo, "auto")
    check_against_reference(postgres_repo, events, spine)


def test_auto_mixes_buckets_and_the_range_frame_per_window_width(postgres_repo):  # noqa: F811
    """One event every 10 s per card: ~360 per 1h window (buckets) but ~30 per 5m window (the
    RANGE frame). A max over the 5m width is then one of the RANGE-framed outputs, not a
    bucket lookup; the answer is the reference's."""
    import datetime as dt

    from compile.test_aggregations import check_against_reference

    start = dt.datetime(2024, 3, 31)
    events = [{"card_id": 1 + i % 2, "event_timestamp": start + dt.timedelta(seconds=10 * (i // 2)),
               "amount": float(i % 89) - 40.0, "merchant": "a"} for i in range(2_880)]
    spine = [{"card_id": c, "event_timestamp": start + dt.timedelta(minutes=m, microseconds=u), "label": f"r{i}"}
             for i, (c, m, u) in enumerate((c, m, u) for c in (1, 2, 3) for m in (0, 4, 5, 59, 60, 61, 119, 200)
                                           for u in (0, 1))]
    postgres_repo.load(events)
    postgres_repo.execute(f"analyze {postgres_repo.table('fv_card_extremes')}")
    use_extremes(postgres_repo, "auto")
    check_against_reference(postgres_repo, events, spine)
    text = rendered_text(postgres_repo.root)
    assert "__fh_x_pre" in text and "__fh_x_others" in text  # both methods in one query


def test_window_extremes_across_bucket_edges_and_before_1970(postgres_repo):  # noqa: F811
    """Buckets are [b*W, (b+1)*W) in microseconds since 1970: events exactly on a bucket edge,
    a microsecond either side, and times before 1970 (negative epochs, where `/` truncates
    toward zero) give the brute-force answer."""
    import datetime as dt

    from compile.test_aggregations import US, check_against_reference

    built = postgres_repo
    use_extremes(built, "buckets")
    events, spine = [], []
    for base in (dt.datetime(1969, 12, 31, 23, 0), dt.datetime(1970, 1, 1), dt.datetime(2024, 3, 31, 1, 0),
                 dt.datetime(1950, 6, 1, 0, 5)):
        for card, offset in ((1, dt.timedelta(0)), (2, US), (3, -US)):
            edge = base + offset
            for i, delta in enumerate((0, 1, -1, 300_000_000, -300_000_000, 3_600_000_000, -3_600_000_000)):
                events.append({"card_id": card, "event_timestamp": edge + dt.timedelta(microseconds=delta),
                               "amount": float((i * 7 + card) % 11) - 5.0, "merchant": "a"})
            for delta in (0, 1, -1, 299_999_999, 300_000_000, 300_000_001, 3_600_000_000, 3_600_000_001):
                spine.append({"card_id": card, "event_timestamp": edge + dt.timedelta(microseconds=delta),
                              "label": f"r{len(spine)}"})
    check_against_reference(built, events, spine)


def test_the_postgres_bench_runs_and_prints_its_tables(postgres_url):
    """bench/bench_postgres.py end to end on tiny data (it is run by hand; timings unchecked)."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent.parent / "bench" / "bench_postgres.py"
    env = {**os.environ, "FEATUREHOUSE_BENCH_POSTGRES_URL": postgres_url}
    schema = f"fh_bench_t{uuid.uuid4().hex[:8]}"
    sizes = ["--spine-rows", "300", "--feature-rows", "2000", "--entities", "40", "--repeat", "1", "--schema", schema]
    for extra, header in (([], "| variant | median s | best s | median / fastest hand-written |"),
                          (["--aggregations"], "| variant | median s | best s | ratio to the one-view join |")):
        result = subprocess.run([sys.executable, str(script), *sizes, *extra], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "identical results" in result.stdout or extra, result.stdout
        assert header in result.stdout, result.stdout


def test_an_unknown_extremes_var_is_one_sentence(postgres_repo):  # noqa: F811
    import datetime as dt

    from compile.test_aggregations import historical

    from featurehouse.errors import CompileError

    use_extremes(postgres_repo, "sparse")
    spine = [{"card_id": 1, "event_timestamp": dt.datetime(2024, 3, 31), "label": "r0"}]
    try:
        expected = "featurehouse_pg_window_extremes is 'sparse'; expected auto, range or buckets"
        with pytest.raises(CompileError, match=expected):
            historical(postgres_repo, spine, "card_extremes")
    finally:
        use_extremes(postgres_repo, "auto")
