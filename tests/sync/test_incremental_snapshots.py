"""Incremental latest snapshots (online_<view>) on DuckDB and Postgres.

A chain of builds as of t1 <= t2 <= t3, the feature rows growing between them (new
entities, newer rows, late rows with an older event time and a newer created time, rows
already there at t1 but in its future, ties), must leave each online_<view> table exactly
as a --full-refresh build as of the same instant leaves it, and as the brute-force
reference (tests/support/reference.py) picks it. The repo is built once per warehouse; each
example refills the fv_<view> tables and runs only the online_<view> models.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from support.pit_harness import VALUES, Harness
from support.reference import CREATED, EVENT, View, winner
from support.repos import drop_postgres_schema, run_dbt, write_repo

# name -> (join keys, [(feature, dtype)], ttl seconds, filter_by_created_timestamp)
VIEWS: dict[str, tuple[tuple[str, ...], list[tuple[str, str]], int, bool]] = {
    "drv": (("driver_id",), [("f_int", "int64"), ("f_str", "string"), ("f_float", "float64")], 3600, False),
    "drv_fc": (("driver_id",), [("f_int", "int64"), ("f_str", "string")], 3600, True),
    "pair": (("driver_id", "customer_id"), [("p_str", "string"), ("p_int", "int64")], 0, False),
    "cust_fc": (("customer_id",), [("c_int", "int32"), ("c_ts", "timestamp")], 0, True),
}
MODELS = [f"online_{name}" for name in VIEWS]
BOOKKEEPING = ("snapshot_as_of", "snapshot_built_at", "snapshot_definition")
_PG = {"int64": "bigint", "int32": "integer", "string": "text", "float64": "double precision", "timestamp": "timestamp"}

BASE = dt.datetime(2024, 3, 31, 0, 0)
MICROSECOND = dt.timedelta(microseconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
T1 = BASE + 2 * HOUR
# 15-minute steps over five hours, and a microsecond either side: exact ttl boundaries are common
GRID = [BASE + 15 * MINUTE * k for k in range(21)]
TIMES = GRID + [t - MICROSECOND for t in GRID] + [t + MICROSECOND for t in GRID]
DRIVERS = [1, 2, 3, 4, 5]
CUSTOMERS = [10, 11, 12]
NEW_DRIVERS = [6, 7]  # appear only in rows that arrive after the first build
NEW_CUSTOMERS = [13]


def _specs(table_prefix: str, ttl_override: dict[str, int] | None = None) -> dict[str, str]:
    sources, views = [], []
    for name, (keys, features, ttl, filter_by_created) in VIEWS.items():
        ttl = (ttl_override or {}).get(name, ttl)
        sources.append(f"  - {{name: {name}_source, table: {table_prefix}raw_{name}, "
                       "timestamp_field: event_timestamp, created_timestamp_column: created}\n")
        entities = ", ".join("driver" if k == "driver_id" else "customer" for k in keys)
        schema = "\n".join(f"      - {{name: {f}, dtype: {t}}}" for f, t in features)
        views.append(f"  - name: {name}\n    entities: [{entities}]\n    source: {name}_source\n    ttl: {ttl}s\n"
                     f"    filter_by_created_timestamp: {'true' if filter_by_created else 'false'}\n"
                     f"    online: true\n    schema:\n{schema}\n")
    return {"specs.yml": (
        "entities:\n"
        "  - {name: driver, join_keys: [driver_id], value_type: int64}\n"
        "  - {name: customer, join_keys: [customer_id], value_type: int64}\n"
        "sources:\n" + "".join(sources) + "feature_views:\n" + "".join(views)
    )}


class Snapshots(Harness):
    """The test repo of one warehouse: refill fv_<view>, build online_<view> as of an instant, read it."""

    @property
    def target(self) -> str:
        return "dev" if self.engine == "duckdb" else "pg"

    def compile(self, ttl_override: dict[str, int] | None = None) -> None:
        from featurehouse.compile import compiler
        from featurehouse.spec.repo import load_repo

        prefix = "" if self.engine == "duckdb" else f"{self.schema}."
        write_repo(self.root, _specs(prefix, ttl_override), postgres_url=self.postgres_url,
                   postgres_schema=self.schema)
        repo = load_repo(self.root)
        compiler.write(self.root / repo.config.models_dir, compiler.compile_repo(repo, self.engine))

    def load(self, rows: dict[str, list[dict]], seed: int) -> None:
        tables = {}
        for name, (keys, features, _, _) in VIEWS.items():
            columns = [(k, "int64") for k in keys] + [(EVENT, "timestamp"), (CREATED, "timestamp")] + features
            tables[f"fv_{name}"] = (columns, rows[name])
        self.replace_rows(tables, shuffle=seed)

    def build(self, as_of: dt.datetime, *, full_refresh: bool = False, models: list[str] = MODELS,
              lookback: str = "1d") -> None:
        variables = {"featurehouse_as_of": str(as_of), "featurehouse_snapshot_lookback": lookback}
        args = ["run", "--quiet", "--select", *models, "--vars", json.dumps(variables)]
        run_dbt(self.root, *args, *(["--full-refresh"] if full_refresh else []), target=self.target)

    def snapshot(self, name: str) -> dict[tuple, dict]:
        """online_<name> by entity, without its bookkeeping columns."""
        keys = VIEWS[name][0]
        rows = self.query(f"select * from {self._table('online_' + name)}").to_pylist()
        out = {tuple(r[k] for k in keys): {c: v for c, v in r.items() if c not in BOOKKEEPING} for r in rows}
        assert len(out) == len(rows), f"online_{name} has two rows for one entity"
        return out

    def bookkeeping(self, name: str) -> tuple:
        return tuple(self.query(
            f"select max(snapshot_as_of) as a, min(snapshot_as_of) as b, count(distinct snapshot_definition) as c "
            f"from {self._table('online_' + name)}").to_pylist()[0].values())


def _make(engine: str, root, postgres_url: str | None = None, schema: str = "main") -> Snapshots:
    harness = Snapshots(engine, root, postgres_url, schema)
    (root / "data").mkdir(parents=True, exist_ok=True)
    statements = [] if engine == "duckdb" else [f'create schema if not exists "{schema}"']
    for name, (keys, features, _, _) in VIEWS.items():
        columns = [f"{k} bigint" for k in keys] + ["event_timestamp timestamp", "created timestamp"]
        columns += [f"{f} {_PG[t]}" for f, t in features]
        statements.append(f"create table {harness._table('raw_' + name)} ({', '.join(columns)})")
    harness.compile()
    harness.execute(*statements)
    run_dbt(root, "run", "--quiet", "--vars", json.dumps({"featurehouse_as_of": str(T1)}), target=harness.target)
    if engine == "postgres":  # a linguistic collation: full ties must still compare bytes
        harness.execute(*(
            f'alter table "{schema}"."fv_{view}" alter column "{feature}" type text collate "en-US-x-icu"'
            for view, (_, features, _, _) in VIEWS.items() for feature, dtype in features if dtype == "string"
        ))
    return harness


@pytest.fixture(scope="module")
def duckdb_snapshots(tmp_path_factory) -> Snapshots:
    return _make("duckdb", tmp_path_factory.mktemp("incr_duckdb"))


@pytest.fixture(scope="module")
def postgres_snapshots(tmp_path_factory, postgres_url: str):
    schema = f"fh_incr_{uuid.uuid4().hex[:10]}"
    yield _make("postgres", tmp_path_factory.mktemp("incr_postgres"), postgres_url, schema)
    drop_postgres_schema(postgres_url, schema)


@pytest.fixture(params=["duckdb", "postgres"])
def snapshots(request) -> Snapshots:
    return request.getfixturevalue(f"{request.param}_snapshots")


# ---- data ---------------------------------------------------------------------------------
def _row(rng: random.Random, name: str, drivers: list[int], customers: list[int]) -> dict:
    keys, features, _, _ = VIEWS[name]
    row = {k: rng.choice(drivers if k == "driver_id" else customers) for k in keys}
    row[EVENT] = rng.choice(TIMES)
    row[CREATED] = rng.choice([None, row[EVENT], row[EVENT] + MICROSECOND, row[EVENT] + 30 * MINUTE, rng.choice(TIMES)])
    for feature, dtype in features:
        row[feature] = rng.choice(VALUES[dtype])
    return row


def _first_rows(rng: random.Random, name: str, count: int) -> list[dict]:
    """What the first build sees: also rows in its future (by event or created time) and ties."""
    rows: list[dict] = []
    for _ in range(count):
        if rows and rng.random() < 0.25:  # a tie: same keys and event time, and often created time
            row = dict(rng.choice(rows))
            if rng.random() < 0.5:
                row[CREATED] = rng.choice([None, row[EVENT], rng.choice(TIMES)])
            for feature, dtype in VIEWS[name][1]:
                if rng.random() < 0.7:
                    row[feature] = rng.choice(VALUES[dtype])
        else:
            row = _row(rng, name, DRIVERS, CUSTOMERS)
        rows.append(row)
    return rows


def _arrivals(rng: random.Random, name: str, existing: list[dict], last: dt.datetime, now: dt.datetime,
              lookback: dt.timedelta, count: int) -> list[dict]:
    """Rows that reach the warehouse after the build as of ``last``: new entities, newer rows, late rows
    (old event time, new created time), rows that land after the build although both their times are
    before it (lagging, within the lookback), ties with rows already there. Each has an event or a created
    time after ``last - lookback``: a row that lands later than that is seen only by --full-refresh."""
    since = last - lookback
    rows: list[dict] = []
    for _ in range(count):
        kind = rng.choice(["new entity", "newer", "late", "lagging", "tie", "any"])
        if kind == "tie" and existing:
            row = dict(rng.choice(existing + rows))
            for feature, dtype in VIEWS[name][1]:
                row[feature] = rng.choice(VALUES[dtype])
        else:
            new = kind == "new entity"
            row = _row(rng, name, DRIVERS + NEW_DRIVERS if new else DRIVERS, CUSTOMERS + NEW_CUSTOMERS if new else CUSTOMERS)
            if kind == "newer":
                row[EVENT] = rng.choice([t for t in TIMES if last < t <= now + HOUR] or [now])
                row[CREATED] = rng.choice([None, row[EVENT], row[EVENT] + MICROSECOND])
            elif kind == "late":
                row[EVENT] = rng.choice([t for t in TIMES if t <= last])
            elif kind == "lagging" and lookback:  # both times before the last build, but inside the lookback
                row[EVENT] = rng.choice([t for t in TIMES if since < t <= last] or [last])
                row[CREATED] = rng.choice([None, row[EVENT], last])
        if row[EVENT] <= since and (row[CREATED] is None or row[CREATED] <= since):
            later = [since + MICROSECOND, last, last + MICROSECOND, now, now + MICROSECOND, now + HOUR]
            row[CREATED] = rng.choice([t for t in later if t > since])
        rows.append(row)
    return rows


def _expected(name: str, rows: list[dict], at: dt.datetime) -> dict[tuple, dict]:
    keys, features, ttl, filter_by_created = VIEWS[name]
    names = tuple(f for f, _ in features)
    view = View(name, keys, names, ttl, filter_by_created, rows)
    out = {}
    for entity in sorted({tuple(r[k] for k in keys) for r in rows}):
        found = winner(view, entity, at)
        if found is not None:
            out[entity] = {**dict(zip(keys, entity)), EVENT: found[EVENT], CREATED: found[CREATED],
                           **{f: found[f] for f in names}}
    return out


def _assert_snapshots(snapshots: Snapshots, rows: dict[str, list[dict]], at: dt.datetime, step: str) -> dict:
    found = {}
    for name in VIEWS:
        found[name] = snapshots.snapshot(name)
        want = _expected(name, rows[name], at)
        assert found[name] == want, _diff(name, found[name], want, step)
        if found[name]:
            assert snapshots.bookkeeping(name)[0] == at and snapshots.bookkeeping(name)[2] == 1, (name, step)
    return found


def _diff(name: str, got: dict, want: dict, step: str) -> str:
    lines = [f"online_{name} after the {step} build differs from the reference:"]
    for entity in sorted(set(got) | set(want)):
        if got.get(entity) != want.get(entity):
            lines.append(f"  {entity}: got {got.get(entity)}, expected {want.get(entity)}")
    return "\n".join(lines[:12])


# ---- the property -------------------------------------------------------------------------
# Few examples with many rows each: an example costs four dbt runs. No shrinking: a seed reproduces.
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), steps=st.lists(st.sampled_from([0, 15, 60, 61, 100]), min_size=2, max_size=2),
       lookback=st.sampled_from([0, 30]))
def test_incremental_builds_equal_a_full_refresh(snapshots, seed, steps, lookback):
    rng = random.Random(seed)
    t2 = T1 + steps[0] * MINUTE
    t3 = t2 + steps[1] * MINUTE
    rows = {name: _first_rows(rng, name, 30) for name in VIEWS}
    snapshots.load(rows, seed)
    snapshots.build(T1, full_refresh=True)
    _assert_snapshots(snapshots, rows, T1, "first")
    for last, now in ((T1, t2), (t2, t3)):
        for name in VIEWS:
            rows[name] = rows[name] + _arrivals(rng, name, rows[name], last, now, lookback * MINUTE, 25)
        snapshots.load(rows, seed + 1)
        snapshots.build(now, lookback=f"{lookback}m")
        incremental = _assert_snapshots(snapshots, rows, now, f"incremental as of {now}")
    snapshots.build(t3, full_refresh=True)
    assert {name: snapshots.snapshot(name) for name in VIEWS} == incremental


# ---- examples -----------------------------------------------------------------------------
def _drv(driver: int, event: dt.datetime, f_int: int, created: dt.datetime | None = None) -> dict:
    return {"driver_id": driver, EVENT: event, CREATED: created, "f_int": f_int, "f_str": "x", "f_float": 1.0}


def test_rows_that_age_out_between_builds_leave_the_snapshot(snapshots):
    empty = {name: [] for name in VIEWS}
    rows = {**empty, "drv": [_drv(1, T1 - 30 * MINUTE, 1), _drv(2, T1 - 50 * MINUTE, 2), _drv(3, T1, 3)]}
    snapshots.load(rows, 0)
    snapshots.build(T1, full_refresh=True)
    assert sorted(snapshots.snapshot("drv")) == [(1,), (2,), (3,)]
    # 40 minutes later (ttl 1 h): driver 2's row aged out; driver 1 got a newer row, driver 4 is new
    later = T1 + 40 * MINUTE
    rows["drv"] += [_drv(1, T1 + 20 * MINUTE, 11), _drv(4, T1 + 30 * MINUTE, 4)]
    snapshots.load(rows, 1)
    snapshots.build(later)
    assert {k: v["f_int"] for k, v in snapshots.snapshot("drv").items()} == {(1,): 11, (3,): 3, (4,): 4}
    # with nothing new, 2 hours on: everything aged out, as a full build says
    snapshots.build(T1 + 2 * HOUR)
    assert snapshots.snapshot("drv") == {}
    snapshots.build(T1 + 2 * HOUR, full_refresh=True)
    assert snapshots.snapshot("drv") == {}


def test_an_earlier_as_of_time_stops_the_build_with_one_sentence(snapshots):
    rows = {**{name: [] for name in VIEWS}, "drv": [_drv(1, T1 - 40 * MINUTE, 1), _drv(2, T1 - 10 * MINUTE, 2)]}
    snapshots.load(rows, 0)
    snapshots.build(T1, full_refresh=True)
    with pytest.raises(AssertionError) as failure:
        snapshots.build(T1 - MINUTE, models=["online_drv"])
    message = str(failure.value)
    assert "online_drv was last built as of 2024-03-31 02:00:00 UTC, later than this build's as-of time " \
           "2024-03-31 01:59:00 UTC (var featurehouse_as_of); an incremental build cannot go back in time: " \
           "add --full-refresh (`dbt build --full-refresh --select online_drv`)" in message, message
    # a build that changed no row still records its as-of time: going back to before it is refused too,
    # though driver 1's row, which aged out at T1 + 20 min, would be back in a snapshot as of T1 + 15 min
    snapshots.build(T1 + 30 * MINUTE, models=["online_drv"])
    assert sorted(snapshots.snapshot("drv")) == [(2,)]
    with pytest.raises(AssertionError, match="cannot go back in time"):
        snapshots.build(T1 + 15 * MINUTE, models=["online_drv"])
    snapshots.build(T1 + 15 * MINUTE, full_refresh=True, models=["online_drv"])
    assert sorted(snapshots.snapshot("drv")) == [(1,), (2,)]


def test_a_changed_definition_asks_for_a_full_refresh(duckdb_snapshots):
    snapshots = duckdb_snapshots
    rows = {**{name: [] for name in VIEWS}, "drv": [_drv(1, T1 - 90 * MINUTE, 1), _drv(2, T1, 2)]}
    snapshots.load(rows, 0)
    snapshots.build(T1, full_refresh=True, models=["online_drv"])
    assert sorted(snapshots.snapshot("drv")) == [(2,)]  # driver 1's row is 90 minutes old, ttl 1 h
    snapshots.compile({"drv": 7200})  # a longer ttl would bring driver 1 back: the table must be rebuilt
    try:
        with pytest.raises(AssertionError) as failure:
            snapshots.build(T1, models=["online_drv"])
        assert "was built from another definition of its feature view" in str(failure.value)
        assert "rebuild it once with `dbt build --full-refresh --select online_drv`" in str(failure.value)
        snapshots.build(T1, full_refresh=True, models=["online_drv"])
        assert sorted(snapshots.snapshot("drv")) == [(1,), (2,)]
    finally:
        snapshots.compile()
        snapshots.build(T1, full_refresh=True, models=["online_drv"])


def test_a_table_without_the_bookkeeping_columns_or_a_bad_lookback_stops_the_build(duckdb_snapshots):
    snapshots = duckdb_snapshots
    snapshots.load({**{name: [] for name in VIEWS}, "drv": [_drv(1, T1, 1)]}, 0)
    snapshots.build(T1, full_refresh=True, models=["online_drv"])
    with pytest.raises(AssertionError, match="var featurehouse_snapshot_lookback: expected a duration such as 90s, "
                                             "30m, 12h, 1d or 2w \\(or seconds\\), got 'soon'"):
        snapshots.build(T1, models=["online_drv"], lookback="soon")
    snapshots.execute("alter table online_drv drop column snapshot_definition")  # as an earlier featurehouse built it
    with pytest.raises(AssertionError) as failure:
        snapshots.build(T1, models=["online_drv"])
    assert "online_drv has the columns [driver_id, event_timestamp, created_timestamp, f_int, f_str, f_float, " \
           "snapshot_as_of, snapshot_built_at], not those of its feature view's current definition" in str(failure.value)
    assert "rebuild it once with `dbt build --full-refresh --select online_drv`" in str(failure.value)
    snapshots.build(T1, full_refresh=True, models=["online_drv"])
    assert sorted(snapshots.snapshot("drv")) == [(1,)]


# ---- featurehouse sync reads only what a build wrote ---------------------------------------
def _sync_drv(snapshots: Snapshots):
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    report = sync(FeatureStore(snapshots.root, target=snapshots.target), ["drv"])
    return report.views[0]


def _store_holds_the_snapshot(snapshots: Snapshots) -> None:
    """The SQLite online store holds exactly online_drv (times and values; ttl not applied)."""
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import open_backend
    from featurehouse.sync.layout import ViewLayout

    store = FeatureStore(snapshots.root, target=snapshots.target)
    layout = ViewLayout.of(store.repo, store.repo.feature_views["drv"])
    expected = snapshots.snapshot("drv")
    reader = open_backend(store.repo.config.online_store, store.repo_path).reader()
    try:
        stored = reader.read([(reader.prepare(layout, ["f_int", "f_str", "f_float"]), sorted(expected))])[0]
    finally:
        reader.close()
    for entity, row in zip(sorted(expected), stored):
        want = expected[entity]
        assert row == (want[EVENT].replace(tzinfo=dt.timezone.utc), [want["f_int"], want["f_str"], want["f_float"]]), entity


def test_sync_fetches_only_the_rows_each_build_wrote(snapshots):
    empty = {name: [] for name in VIEWS}
    rows = {**empty, "drv": [_drv(d, T1 - d * MINUTE, d) for d in DRIVERS]}
    snapshots.load(rows, 0)
    snapshots.build(T1, full_refresh=True, models=["online_drv"])
    first = _sync_drv(snapshots)
    assert (first.full_refresh, first.fetched, first.written) == (True, 5, 5)
    _store_holds_the_snapshot(snapshots)

    # two newer rows and a new driver: the incremental build writes 3 rows, and sync fetches just those
    rows["drv"] += [_drv(1, T1 + 5 * MINUTE, 11), _drv(2, T1 + 5 * MINUTE, 12), _drv(6, T1 + 6 * MINUTE, 6)]
    snapshots.load(rows, 1)
    snapshots.build(T1 + 10 * MINUTE, models=["online_drv"])
    report = _sync_drv(snapshots)
    assert (report.rows_read, report.fetched, report.written) == (6, 3, 3)
    _store_holds_the_snapshot(snapshots)

    # a build that changed nothing rewrites one row (its heartbeat): fetched, not written
    snapshots.build(T1 + 20 * MINUTE, models=["online_drv"])
    report = _sync_drv(snapshots)
    assert (report.fetched, report.written) == (1, 0)

    # a full rebuild as of the same pinned instant, with a correction (newer created time) for driver 3:
    # every row was written again, so sync fetches them all and writes the one that changed
    rows["drv"].append(_drv(3, T1 - 3 * MINUTE, 33, created=T1 + 15 * MINUTE))
    snapshots.load(rows, 2)
    snapshots.build(T1 + 20 * MINUTE, full_refresh=True, models=["online_drv"])
    report = _sync_drv(snapshots)
    assert (report.fetched, report.written) == (6, 1)
    _store_holds_the_snapshot(snapshots)

    # the build times went back (a clock set back): sync cannot trust its watermark and fetches everything
    table = snapshots._table("online_drv")
    snapshots.execute(f"update {table} set snapshot_built_at = snapshot_built_at - interval '1 day'")
    report = _sync_drv(snapshots)
    assert (report.fetched, report.written) == (6, 0)
    assert _sync_drv(snapshots).fetched == 0  # and from there on, only what is new
    _store_holds_the_snapshot(snapshots)
