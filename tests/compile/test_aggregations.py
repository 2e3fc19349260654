"""Window aggregations against a brute-force reference, on DuckDB and Postgres.

Each engine's repo is written, compiled and built by dbt once per module; every example
then replaces the contents of the built fv_ tables and asks the SDK (whose rendered SQL
is cached), so an example costs a few queries. The reference aggregates, for each spine
row, the qualifying events in plain Python: ``t - W < event_timestamp <= t``.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.reference import View, winner
from support.repos import drop_postgres_schema, run_dbt, winners_hooks, write_repo

BASE = dt.datetime(2024, 3, 31, 0, 0)
US = dt.timedelta(microseconds=1)
# (column, function, window): every function at two windows, count over a string column
AGGREGATIONS = [
    *[("amount", f, w) for w in ("5m", "1h") for f in ("sum", "count", "mean", "min", "max", "stddev")],
    ("amount", "count", "1d"),
    ("merchant", "count", "1h"),
]
WINDOW_SECONDS = {"5m": 300, "1h": 3600, "1d": 86400}
OUTPUTS = [f"{c}_{f}_{w}" for c, f, w in AGGREGATIONS]
# Views over one column take other paths on DuckDB: counts come from the events' positions
# and means from sum / count; with counts only, no value is aggregated at all.
VIEWS = {
    "card_tx": AGGREGATIONS,
    "card_amount": [a for a in AGGREGATIONS if a[0] == "amount"],
    "card_counts": [("amount", "count", "5m"), ("amount", "count", "1d")],
    # only min and max: on Postgres these take the time-bucket pass alone (no RANGE frame)
    "card_extremes": [("amount", "max", "5m"), ("amount", "min", "1h"), ("amount", "max", "1h")],
}
PROFILE_TTL = 3600


def _specs(prefix: str) -> dict[str, str]:
    def aggregations(view: str) -> str:
        return "\n".join(f"      - {{column: {c}, function: {f}, window: {w}}}" for c, f, w in VIEWS[view])

    return {"specs.yml": f"""\
entities:
  - {{name: card, join_keys: [card_id], value_type: int64}}
sources:
  - name: tx
    table: {prefix}raw_tx
    timestamp_field: ts
    columns: [card_id, ts, amount, merchant]
  - name: profile_source
    table: {prefix}raw_profile
    timestamp_field: event_timestamp
feature_views:
  - name: card_tx
    entities: [card]
    source: tx
    aggregations:
{aggregations("card_tx")}
    online: true
  - name: card_amount
    entities: [card]
    source: tx
    aggregations:
{aggregations("card_amount")}
    online: false
  - name: card_counts
    entities: [card]
    source: tx
    aggregations:
{aggregations("card_counts")}
    online: false
  - name: card_extremes
    entities: [card]
    source: tx
    aggregations:
{aggregations("card_extremes")}
    online: false
  - name: card_profile
    entities: [card]
    source: profile_source
    ttl: {PROFILE_TTL}s
    schema:
      - {{name: credit_limit, dtype: float64}}
training_sets:
  - name: mixed
    spine: {{table: {prefix}spine}}
    features: [card_tx:amount_sum_5m, card_profile:credit_limit, card_tx:amount_count_1d, card_tx:amount_stddev_1h]
"""}


# ---- the reference --------------------------------------------------------------------------
def aggregate(function: str, values: list[Any]) -> Any:
    """One aggregate over the non-NULL values of a window, with SQL's empty-window results."""
    values = [v for v in values if v is not None]
    if function == "count":
        return len(values)
    if not values:
        return None
    if function == "sum":
        return math.fsum(values)
    if function == "mean":
        return math.fsum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    assert function == "stddev"
    return statistics.stdev(values) if len(values) >= 2 else None


def reference_row(
    events: list[dict], card: int | None, t: dt.datetime | None, aggregations: list[tuple] = AGGREGATIONS
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, function, window in aggregations:
        name = f"{column}_{function}_{window}"
        if t is None:
            out[name] = None
            continue
        start = t - dt.timedelta(seconds=WINDOW_SECONDS[window])
        values = [e[column] for e in events if e["card_id"] == card and start < e["event_timestamp"] <= t]
        out[name] = aggregate(function, values)
    return out


def assert_same(got: Any, expected: Any, where: str) -> None:
    if expected is None or got is None:
        assert got is expected or (got is None and expected is None), f"{where}: got {got!r}, expected {expected!r}"
    elif isinstance(expected, float) or isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), f"{where}: got {got!r}, expected {expected!r}"
    else:
        assert got == expected, f"{where}: got {got!r}, expected {expected!r}"


# ---- one built repo per engine ---------------------------------------------------------------
@dataclass
class Built:
    engine: str
    root: Path
    postgres_url: str | None
    schema: str
    hooks: list[str] = field(default_factory=list)  # the fv_ models' post-hooks (winners tables)

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def execute(self, *statements: str, rows: dict[str, list[tuple]] | None = None) -> None:
        """Run statements, then replace each table in ``rows`` with those tuples."""
        rows = rows or {}
        if self.engine == "duckdb":
            import duckdb

            con = duckdb.connect(str(self.root / "data" / "warehouse.duckdb"))
            try:
                for statement in statements:
                    con.execute(statement).fetchall()
                for table, values in rows.items():
                    con.execute(f"delete from {self.table(table)}").fetchall()
                    if values:
                        marks = ", ".join("?" * len(values[0]))
                        con.executemany(f"insert into {self.table(table)} values ({marks})", values)
            finally:
                con.close()
            return
        import psycopg

        with psycopg.connect(self.postgres_url, autocommit=True) as con:
            for statement in statements:
                con.execute(statement)
            for table, values in rows.items():
                con.execute(f"delete from {self.table(table)}")
                if values:
                    with con.cursor() as cur, cur.copy(f"copy {self.table(table)} from stdin") as copy:
                        for value in values:
                            copy.write_row(value)

    def load(self, events: list[dict], profiles: list[dict] = ()) -> None:
        one_column = [(e["card_id"], e["event_timestamp"], None, e["amount"]) for e in events]
        self.execute(rows={
            "fv_card_tx": [(e["card_id"], e["event_timestamp"], None, e["amount"], e["merchant"]) for e in events],
            "fv_card_amount": one_column,
            "fv_card_counts": one_column,
            "fv_card_extremes": one_column,
            "fv_card_profile": [(p["card_id"], p["event_timestamp"], None, p["credit_limit"]) for p in profiles],
        })
        self.execute(*self.hooks)  # what rebuilding the fv_ models would run after them

    def store(self):
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore(self.root, target="dev" if self.engine == "duckdb" else "pg")

    def query(self, sql: str) -> list[dict]:
        from featurehouse.dbt.profile import load_target
        from featurehouse.warehouse import connect

        warehouse = connect(load_target(self.root, "dev" if self.engine == "duckdb" else "pg", self.root), self.root)
        try:
            return warehouse.arrow(sql).to_pylist()
        finally:
            warehouse.close()

    def dbt(self, *args: str) -> None:
        run_dbt(self.root, *args, target="dev" if self.engine == "duckdb" else "pg")


def _build(engine: str, root: Path, postgres_url: str | None, schema: str) -> Built:
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    built = Built(engine, root, postgres_url, schema)
    prefix = "" if engine == "duckdb" else f"{schema}."
    write_repo(root, _specs(prefix), postgres_url=postgres_url, postgres_schema=schema)
    statements = [] if engine == "duckdb" else [f'create schema if not exists "{schema}"']
    statements += [
        f"create table {built.table('raw_tx')} (card_id bigint, ts timestamp, amount double precision, merchant text)",
        f"create table {built.table('raw_profile')} (card_id bigint, event_timestamp timestamp, credit_limit double precision)",
        f"create table {built.table('spine')} (card_id bigint, event_timestamp timestamp, label text)",
    ]
    built.execute(*statements)
    repo = load_repo(root)
    dialect = "duckdb" if engine == "duckdb" else "postgres"
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, dialect))
    built.dbt("build")
    built.hooks = winners_hooks(root, "dev" if engine == "duckdb" else "pg")
    return built


@pytest.fixture(scope="module")
def duckdb_repo(tmp_path_factory) -> Built:
    return _build("duckdb", tmp_path_factory.mktemp("agg_duckdb"), None, "main")


@pytest.fixture(scope="module")
def postgres_repo(tmp_path_factory, postgres_url) -> Built:
    schema = f"fh_agg_{uuid.uuid4().hex[:10]}"
    yield _build("postgres", tmp_path_factory.mktemp("agg_pg"), postgres_url, schema)
    drop_postgres_schema(postgres_url, schema)


@pytest.fixture(params=["duckdb", "postgres"])
def built(request) -> Built:
    return request.getfixturevalue(f"{request.param}_repo")


def historical(built: Built, spine: list[dict], features: list[str] | str) -> list[dict]:
    import pyarrow as pa

    table = pa.table({
        "card_id": pa.array([r["card_id"] for r in spine], pa.int64()),
        "event_timestamp": pa.array([r["event_timestamp"] for r in spine], pa.timestamp("us")),
        "label": pa.array([r["label"] for r in spine], pa.string()),
    })
    return built.store().get_historical_features(entity_df=table, features=features).to_arrow().to_pylist()


def check_against_reference(built: Built, events: list[dict], spine: list[dict]) -> None:
    built.load(events)
    for view, aggregations in VIEWS.items():
        result = historical(built, spine, view)
        assert [(r["card_id"], r["label"]) for r in result] == [(r["card_id"], r["label"]) for r in spine]
        for i, (got, row) in enumerate(zip(result, spine)):
            expected = reference_row(events, row["card_id"], row["event_timestamp"], aggregations)
            for name, value in expected.items():
                assert_same(got[name], value, f"{built.engine} {view} spine row {i} ({row}), {name}")


# ---- property: any events, any spine -----------------------------------------------------------
@st.composite
def cases(draw) -> tuple[list[dict], list[dict]]:
    """(events, spine) with many window edges.

    Times lie on a one-minute grid, sometimes a microsecond off; half the events sit exactly
    on an edge of a spine row's windows (t - W, t, or a microsecond either side). Spine rows
    repeat (same key and time) and come in any order; a NULL key matches no event. Drawn
    from a Hypothesis-controlled random, so a failure replays with its seed.
    """
    rng = draw(st.randoms(use_true_random=False))
    offsets = [dt.timedelta(0)] * 6 + [US, -US]

    def time() -> dt.datetime:
        return BASE + dt.timedelta(minutes=rng.randint(0, 130)) + rng.choice(offsets)

    rows = [{"card_id": rng.choice([1, 2, 3, 4, None]), "event_timestamp": time()} for _ in range(rng.randint(1, 12))]
    rows += [dict(rng.choice(rows)) for _ in range(rng.randint(0, 4))]
    rng.shuffle(rows)
    spine = [{**row, "label": f"r{i}"} for i, row in enumerate(rows)]
    events = []
    for _ in range(rng.randint(0, 40)):
        if rng.random() < 0.5:
            row = rng.choice(rows)
            card = row["card_id"] or 1
            at = row["event_timestamp"] - dt.timedelta(seconds=rng.choice([0, 300, 3600, 86400])) + rng.choice(offsets)
        else:
            card, at = rng.randint(1, 3), time()
        events.append({
            "card_id": card,
            "event_timestamp": at,
            "amount": rng.choice([None, 0.0, 1.5, -2.25, 10.0, 3.0, 1e6 + 0.5]),
            "merchant": rng.choice([None, "a", "b"]),
        })
    return events, spine


PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(case=cases())
def test_duckdb_matches_reference(duckdb_repo: Built, case: tuple[list[dict], list[dict]]) -> None:
    check_against_reference(duckdb_repo, *case)


@PROPERTY_SETTINGS
@given(case=cases())
def test_postgres_matches_reference(postgres_repo: Built, case: tuple[list[dict], list[dict]]) -> None:
    check_against_reference(postgres_repo, *case)


# ---- the edges, spelled out ----------------------------------------------------------------------
def test_window_edges_and_empty_windows(built: Built) -> None:
    t = BASE + dt.timedelta(hours=2)
    five = dt.timedelta(minutes=5)
    events = [
        {"card_id": 1, "event_timestamp": t - five, "amount": 100.0, "merchant": "x"},      # exactly t - W: out
        {"card_id": 1, "event_timestamp": t - five + US, "amount": 2.0, "merchant": "y"},  # just inside
        {"card_id": 1, "event_timestamp": t, "amount": 4.0, "merchant": None},             # exactly t: in
        {"card_id": 1, "event_timestamp": t + US, "amount": 1000.0, "merchant": "z"},       # the future: out
        {"card_id": 2, "event_timestamp": t - dt.timedelta(minutes=1), "amount": 7.0, "merchant": "w"},
    ]
    spine = [
        {"card_id": 1, "event_timestamp": t, "label": "edges"},
        {"card_id": 2, "event_timestamp": t, "label": "one event"},
        {"card_id": 3, "event_timestamp": t, "label": "no events"},
        {"card_id": 1, "event_timestamp": None, "label": "no time"},
    ]
    built.load(events)
    rows = historical(built, spine, [f"card_tx:{name}" for name in OUTPUTS])
    edges, one, empty, no_time = rows
    assert (edges["amount_count_5m"], edges["amount_sum_5m"], edges["amount_min_5m"]) == (2, 6.0, 2.0)
    assert edges["amount_count_1h"] == 3 and edges["amount_max_1h"] == 100.0
    assert edges["merchant_count_1h"] == 2  # NULL merchants are not counted
    assert math.isclose(edges["amount_stddev_5m"], statistics.stdev([2.0, 4.0]))
    assert one["amount_count_5m"] == 1 and one["amount_stddev_5m"] is None  # sample stddev needs two values
    assert empty["amount_count_1d"] == 0
    assert [empty[n] for n in OUTPUTS if "count" not in n] == [None] * 10
    assert all(no_time[n] is None for n in OUTPUTS)


def test_ties_duplicates_and_many_events(built: Built) -> None:
    """Events at t and at t - W tie with spine rows; duplicate spine rows; a long busy window."""
    t = BASE + dt.timedelta(hours=3)
    events = [
        {"card_id": 1, "event_timestamp": t, "amount": 1.0, "merchant": "a"},
        {"card_id": 1, "event_timestamp": t, "amount": 2.0, "merchant": None},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(minutes=5), "amount": 4.0, "merchant": "b"},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(minutes=5), "amount": 8.0, "merchant": "b"},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(hours=1), "amount": None, "merchant": "c"},
        {"card_id": 2, "event_timestamp": t - dt.timedelta(minutes=5) + US, "amount": None, "merchant": None},
        # 3000 events in the last 50 minutes of card 3, and an old one outside every window
        *[{"card_id": 3, "event_timestamp": t - dt.timedelta(seconds=i), "amount": float(i % 7), "merchant": "m"}
          for i in range(3000)],
        {"card_id": 3, "event_timestamp": t - dt.timedelta(days=2), "amount": 5.0, "merchant": "m"},
    ]
    spine = [
        {"card_id": c, "event_timestamp": at, "label": f"r{i}"}
        for i, (c, at) in enumerate([
            (1, t), (1, t), (1, t - dt.timedelta(minutes=5)), (1, t), (2, t), (3, t), (3, t),
            (3, t - dt.timedelta(minutes=10)), (1, t - dt.timedelta(minutes=5)), (4, t), (None, t),
        ])
    ]
    check_against_reference(built, events, spine)


def test_sums_do_not_inherit_the_rounding_of_old_events(built: Built) -> None:
    """A window's sum is its values' sum, not a difference of running totals over the history."""
    t = BASE + dt.timedelta(hours=3)
    events = [
        {"card_id": 1, "event_timestamp": t - dt.timedelta(hours=2), "amount": 1e16, "merchant": "a"},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(hours=2) + US, "amount": -1e16, "merchant": "a"},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(minutes=3), "amount": 0.1, "merchant": "a"},
        {"card_id": 1, "event_timestamp": t - dt.timedelta(minutes=1), "amount": 0.2, "merchant": "a"},
    ]
    built.load(events)
    for view in ("card_tx", "card_amount"):
        row = historical(built, [{"card_id": 1, "event_timestamp": t, "label": "x"}], view)[0]
        # a running total past 1e16 is rounded to a multiple of 2: differencing two would give 0 or 2
        assert math.isclose(row["amount_sum_5m"], 0.3, rel_tol=1e-12), (view, row["amount_sum_5m"])
        assert math.isclose(row["amount_mean_5m"], 0.15, rel_tol=1e-12), (view, row["amount_mean_5m"])
        assert row["amount_count_5m"] == 2 and row["amount_max_1h"] == 0.2, view


def test_output_types(duckdb_repo: Built) -> None:
    duckdb_repo.load([{"card_id": 1, "event_timestamp": BASE, "amount": 2.0, "merchant": "m"}])
    spine = [{"card_id": 1, "event_timestamp": BASE, "label": "a"}, {"card_id": 9, "event_timestamp": BASE, "label": "b"}]
    import pyarrow as pa

    entity_df = pa.table({"card_id": [1, 9], "event_timestamp": pa.array([BASE, BASE], pa.timestamp("us")),
                          "label": ["a", "b"]})
    job = duckdb_repo.store().get_historical_features(entity_df=entity_df, features="card_tx")
    schema = job.to_arrow().schema
    assert schema.field("amount_count_5m").type == pa.int64()
    assert schema.field("amount_mean_1h").type == pa.float64()
    frame = job.to_df()
    assert str(frame["amount_count_5m"].dtype) == "Int64"
    assert frame["amount_count_5m"].tolist() == [1, 0] and len(spine) == 2


# ---- training-set models and the online snapshot, built by dbt ----------------------------------------
def test_training_set_mixes_aggregation_and_plain_views(built: Built) -> None:
    t0 = BASE + dt.timedelta(hours=1)
    events = [
        {"card_id": c, "event_timestamp": t0 + dt.timedelta(minutes=m), "amount": float(a), "merchant": "m"}
        for c, m, a in [(1, 0, 5), (1, 3, 7), (1, 4, 1), (2, 2, 3), (2, 10, 4), (1, 50, 2)]
    ]
    profiles = [
        {"card_id": 1, "event_timestamp": t0, "credit_limit": 500.0},
        {"card_id": 1, "event_timestamp": t0 + dt.timedelta(minutes=4), "credit_limit": 800.0},
        {"card_id": 2, "event_timestamp": t0 - dt.timedelta(hours=3), "credit_limit": 100.0},  # beyond ttl
    ]
    spine = [
        {"card_id": c, "event_timestamp": t0 + dt.timedelta(minutes=m), "label": f"r{i}"}
        for i, (c, m) in enumerate([(1, 5), (2, 10), (1, 3), (1, 5), (3, 1), (1, 55), (2, 10)])
    ]
    built.load(events, profiles)
    built.execute(rows={"spine": [(r["card_id"], r["event_timestamp"], r["label"]) for r in spine]})
    built.dbt("run", "--select", "ts_mixed")
    rows = built.query(f"select * from {built.table('ts_mixed')}")
    assert [r["label"] for r in rows] == [r["label"] for r in spine]
    plain = View("card_profile", ("card_id",), ("credit_limit",), PROFILE_TTL, rows=[
        {**p, "created_timestamp": None} for p in profiles
    ])
    for got, row in zip(rows, spine):
        expected = reference_row(events, row["card_id"], row["event_timestamp"])
        for name in ("amount_sum_5m", "amount_count_1d", "amount_stddev_1h"):
            assert_same(got[name], expected[name], f"{built.engine} {row['label']} {name}")
        match = winner(plain, (row["card_id"],), row["event_timestamp"])
        assert got["credit_limit"] == (match["credit_limit"] if match else None), row["label"]
    assert list(rows[0])[:3] == ["card_id", "event_timestamp", "label"]


def test_online_snapshot_equals_training_data_at_the_as_of_time(built: Built) -> None:
    as_of = BASE + dt.timedelta(hours=2)
    events = [
        {"card_id": 1, "event_timestamp": as_of - dt.timedelta(minutes=2), "amount": 1.0, "merchant": "a"},
        {"card_id": 1, "event_timestamp": as_of - dt.timedelta(minutes=30), "amount": 3.0, "merchant": "a"},
        {"card_id": 1, "event_timestamp": as_of - dt.timedelta(minutes=5), "amount": 50.0, "merchant": "a"},
        {"card_id": 2, "event_timestamp": as_of - dt.timedelta(days=3), "amount": 9.0, "merchant": "b"},  # aged out
        {"card_id": 3, "event_timestamp": as_of + dt.timedelta(minutes=1), "amount": 9.0, "merchant": "c"},  # future
    ]
    built.load(events)
    built.dbt("run", "--select", "online_card_tx", "--vars", f"{{featurehouse_as_of: '{as_of.isoformat(sep=' ')}'}}")
    snapshot = built.query(f"select * from {built.table('online_card_tx')} order by card_id")
    assert [r["card_id"] for r in snapshot] == [1, 2]  # every entity seen by the as-of time
    assert list(snapshot[0])[:3] == ["card_id", "event_timestamp", "created_timestamp"]
    offline = historical(built, [{"card_id": r["card_id"], "event_timestamp": as_of, "label": ""} for r in snapshot],
                         [f"card_tx:{name}" for name in OUTPUTS])
    for online, row in zip(snapshot, offline):
        assert online["event_timestamp"].replace(tzinfo=None) == as_of
        for name in OUTPUTS:
            assert_same(online[name], row[name], f"{built.engine} card {row['card_id']} {name}")
    assert snapshot[0]["amount_count_5m"] == 1 and snapshot[1]["amount_count_1d"] == 0


# ---- spec checks (no warehouse) ---------------------------------------------------------------------
def _load(tmp_path: Path, view_yaml: str):
    from featurehouse.spec.repo import load_repo

    write_repo(tmp_path, {"specs.yml": f"""\
entities:
  - {{name: card, join_keys: [card_id]}}
sources:
  - {{name: tx, table: raw_tx, timestamp_field: ts, columns: [card_id, ts, amount]}}
feature_views:
  - name: card_tx
    entities: [card]
    source: tx
{view_yaml}"""})
    return load_repo(tmp_path)


def _compile_error(tmp_path: Path, view_yaml: str) -> str:
    from featurehouse.compile import compiler
    from featurehouse.errors import FeaturehouseError

    with pytest.raises(FeaturehouseError) as error:
        compiler.compile_repo(_load(tmp_path, view_yaml), "duckdb")
    return str(error.value)


def test_default_names_keep_the_window_as_written(tmp_path: Path) -> None:
    repo = _load(tmp_path, "    aggregations:\n      - {column: amount, function: sum, window: 7d}\n"
                           "      - {column: amount, function: count, window: 1h, name: tx_count_1h}\n")
    assert repo.feature_views["card_tx"].feature_names == ["amount_sum_7d", "tx_count_1h"]


def test_unknown_column_is_a_spec_error_with_a_suggestion(tmp_path: Path) -> None:
    message = _compile_error(tmp_path, "    aggregations:\n      - {column: amout, function: sum, window: 1d}\n")
    assert "specs.yml:" in message and "unknown column 'amout'" in message and "did you mean 'amount'?" in message


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("    aggregations:\n      - {column: amount, function: maxx, window: 1d}\n", "did you mean .max."),
    ("    aggregations:\n      - {column: amount, function: sum, window: 400d}\n", "at most 365d"),
    ("    aggregations:\n      - {column: amount, function: sum, window: soon}\n", "expected a duration"),
])
def test_invalid_aggregation_specs(tmp_path: Path, yaml_text: str, expected: str) -> None:
    from featurehouse.errors import SpecError

    with pytest.raises(SpecError, match=expected) as error:
        _load(tmp_path, yaml_text)
    assert error.value.line is not None


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("    schema: [{name: amount, dtype: float64}]\n    aggregations:\n      - {column: amount, function: sum, window: 1d}\n",
     "another feature view"),
    ("    filter_by_created_timestamp: true\n    aggregations:\n      - {column: amount, function: sum, window: 1d}\n",
     "filter_by_created_timestamp is not supported"),
    ("    aggregations:\n      - {column: card_id, function: sum, window: 1d}\n", "only count"),
])
def test_aggregation_views_reject_what_they_cannot_mean(tmp_path: Path, yaml_text: str, expected: str) -> None:
    assert expected in _compile_error(tmp_path, yaml_text)


def test_compiled_models(tmp_path: Path) -> None:
    from featurehouse.compile import compiler

    repo = _load(tmp_path, "    aggregations:\n      - {column: amount, function: count, window: 1h}\n")
    files = compiler.compile_repo(repo, "duckdb")
    assert "featurehouse.window_aggregation_snapshot(" in files["online_card_tx.sql"]
    assert "'function': 'count', 'window_seconds': 3600" in files["online_card_tx.sql"]
    assert '"amount"' in files["fv_card_tx.sql"]


def test_a_function_other_than_count_on_a_text_column_of_a_file_is_a_spec_error(tmp_path: Path) -> None:
    from featurehouse.compile import compiler
    from featurehouse.errors import SpecError
    from featurehouse.spec.repo import load_repo

    write_repo(tmp_path, {"specs.yml": """\
entities:
  - {name: card, join_keys: [card_id]}
sources:
  - {name: tx, path: data/tx.csv, timestamp_field: ts}
feature_views:
  - name: card_tx
    entities: [card]
    source: tx
    aggregations:
      - {column: discount, function: sum, window: 1d}
      - {column: merchant, function: count, window: 1d}
      - {column: merchant, function: max, window: 1d}
"""})
    # discount is empty, so DuckDB reads it as VARCHAR: that casts fine and is no error
    (tmp_path / "data" / "tx.csv").write_text("card_id,ts,discount,merchant\n1,2024-01-01 00:00:00,,shop\n")
    with pytest.raises(SpecError) as error:
        compiler.compile_repo(load_repo(tmp_path), "duckdb")
    assert error.value.line == 12
    assert ("'merchant_max_1d': max needs a numeric column, but 'merchant' is VARCHAR (it holds 'shop') "
            "in data/tx.csv") in str(error.value)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_function_other_than_count_on_a_text_column_of_a_table_stops_dbt_naming_the_aggregation(
    tmp_path: Path, engine: str, request
) -> None:
    """A table's types are unknown at compile time: dbt says which aggregation is wrong, not "could not convert"."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    postgres_url = request.getfixturevalue("postgres_url") if engine == "postgres" else None
    schema = "main" if engine == "duckdb" else f"fh_agg_{uuid.uuid4().hex[:10]}"
    root = write_repo(tmp_path, {"specs.yml": f"""\
entities:
  - {{name: card, join_keys: [card_id]}}
sources:
  - {{name: tx, table: "{schema}.raw_tx", timestamp_field: ts}}
feature_views:
  - name: card_tx
    entities: [card]
    source: tx
    aggregations:
      - {{column: merchant, function: count, window: 1d}}
      - {{column: merchant, function: sum, window: 1d}}
    online: true
  - name: card_notes
    entities: [card]
    source: tx
    aggregations:
      - {{column: note, function: sum, window: 1d}}
    online: true
training_sets:
  - {{name: tx_training, spine: {{table: "{schema}.raw_tx"}}, features: [card_tx:merchant_sum_1d]}}
"""}, postgres_url=postgres_url, postgres_schema=schema)
    built = Built(engine, root, postgres_url, schema)
    try:
        built.execute(*([] if engine == "duckdb" else [f'create schema "{schema}"']),
                      f"create table {built.table('raw_tx')} (card_id bigint, ts timestamp, merchant text, note text)",
                      rows={"raw_tx": [(1, BASE, "shop", None)]})
        compiler.write(root / "models" / "featurehouse", compiler.compile_repo(load_repo(root), engine))
        for model in ("online_card_tx", "ts_tx_training"):
            with pytest.raises(AssertionError, match="aggregation 'merchant_sum_1d' of fv_card_tx: sum needs a numeric "
                                                     "column, but 'merchant' is (VARCHAR|text) \\(it holds 'shop'\\); "
                                                     "only count works"):
                built.dbt("build", "--select", f"+{model}")
        built.dbt("build", "--select", "+online_card_notes")  # a text column with no value is no error
    finally:
        if postgres_url:
            drop_postgres_schema(postgres_url, schema)


# ---- the same property on Spark (smaller: a Spark query costs ~1 s) ----------------------------
class SparkBuilt(Built):
    """The repo on the local Spark session (target ``spark``, tests/support/spark.py)."""

    def table(self, name: str) -> str:
        return f"`{self.schema}`.`{name}`"

    def execute(self, *statements: str, rows: dict[str, list[tuple]] | None = None) -> None:
        import pyarrow as pa
        from pyspark.sql.pandas.types import to_arrow_schema

        from support import spark

        spark.run_sql(*(spark.to_spark_sql(s.replace("`", '"')) for s in statements))
        for table, values in (rows or {}).items():
            schema = to_arrow_schema(spark.session().table(self.table(table)).schema, timezone="UTC")
            schema = pa.schema([f.with_type(pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in schema])
            data = pa.Table.from_pylist([dict(zip(schema.names, v)) for v in values], schema=schema)
            spark.replace_table(self.table(table), data)

    def store(self):
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore(self.root, target="spark")

    def query(self, sql: str) -> list[dict]:
        from featurehouse.dbt.profile import load_target
        from featurehouse.warehouse import connect

        return connect(load_target(self.root, "spark", self.root), self.root).arrow(sql).to_pylist()

    def dbt(self, *args: str) -> None:
        run_dbt(self.root, *args, target="spark")


@pytest.fixture(scope="module")
def spark_agg_repo(tmp_path_factory) -> Built:
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo
    from support import spark

    spark.require_java()
    schema = spark.new_schema("fh_agg")
    root = tmp_path_factory.mktemp("agg_spark")
    built = SparkBuilt("spark", root, None, schema)
    write_repo(root, _specs(f"{schema}."))
    with (root / "profiles.yml").open("a") as profiles:
        profiles.write(spark.spark_output(schema))
    built.execute(
        f'create schema if not exists "{schema}"',
        f'create table "{schema}"."raw_tx" (card_id bigint, ts timestamp, amount double precision, merchant text)',
        f'create table "{schema}"."raw_profile" (card_id bigint, event_timestamp timestamp, credit_limit double precision)',
        f'create table "{schema}"."spine" (card_id bigint, event_timestamp timestamp, label text)',
    )
    compiler.write(root / load_repo(root).config.models_dir, compiler.compile_repo(load_repo(root), "spark"))
    built.dbt("build")
    yield built
    spark.run_sql(f"drop schema if exists `{schema}` cascade")


@pytest.mark.spark
@settings(PROPERTY_SETTINGS, max_examples=5)
@given(case=cases())
def test_spark_matches_reference(spark_agg_repo: Built, case: tuple[list[dict], list[dict]]) -> None:
    check_against_reference(spark_agg_repo, *case)
