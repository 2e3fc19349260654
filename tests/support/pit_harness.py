"""A throwaway feature repo for point-in-time tests, built once, refilled per example.

``build(engine, root, ...)`` writes a repo with five feature views over ``table:``
sources, compiles it for the engine and runs ``dbt build`` once. After that,
``Harness.load`` replaces the contents of the built ``fv_<view>`` tables directly and
``Harness.historical`` calls the SDK, whose rendered SQL is cached on disk: an example
costs a few queries, not a dbt start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.reference import CREATED, EVENT, View
from support.repos import drop_postgres_schema, run_dbt, winners_hooks, write_repo

# name -> (join keys, [(feature, dtype)], ttl seconds, filter_by_created_timestamp)
VIEWS: dict[str, tuple[tuple[str, ...], list[tuple[str, str]], int, bool]] = {
    "drv": (("driver_id",), [("f_int", "int64"), ("f_str", "string"), ("f_float", "float64")], 3600, False),
    "cust": (("customer_id",), [("c_bool", "bool"), ("c_int", "int32")], 0, False),
    "pair": (("driver_id", "customer_id"), [("p_str", "string"), ("p_int", "int64")], 7200, False),
    "drv_fc": (("driver_id",), [("f_int", "int64"), ("f_str", "string")], 3600, True),
    "cust_fc": (("customer_id",), [("c_int", "int32"), ("c_ts", "timestamp")], 0, True),
}
# Feature requests exercised by the tests: (features, full_feature_names). Without a
# filter_by_created view DuckDB takes its native ASOF path; with one, the sort-based default.
NATIVE = (("drv", "cust", "pair"), False)
MIXED = (("drv", "drv_fc", "cust_fc", "pair:p_str"), True)
SUBSET = (("drv:f_str", "drv_fc:f_str", "cust:c_int"), True)
REQUESTS = {"native": NATIVE, "mixed": MIXED, "subset": SUBSET}

_ARROW = {"int64": "int64", "int32": "int32", "string": "string", "float64": "float64", "bool": "bool_"}
_PG = {"int64": "bigint", "int32": "integer", "string": "text", "float64": "double precision",
       "bool": "boolean", "timestamp": "timestamp"}


def _specs(schema_prefix: str) -> dict[str, str]:
    sources, views = [], []
    for name, (keys, features, ttl, filter_by_created) in VIEWS.items():
        sources.append(
            f"  - name: {name}_source\n    table: {schema_prefix}raw_{name}\n"
            f"    timestamp_field: event_timestamp\n    created_timestamp_column: created\n"
        )
        entities = ", ".join("driver" if k == "driver_id" else "customer" for k in keys)
        schema = "\n".join(f"      - {{name: {f}, dtype: {t}}}" for f, t in features)
        views.append(
            f"  - name: {name}\n    entities: [{entities}]\n    source: {name}_source\n    ttl: {ttl}s\n"
            f"    filter_by_created_timestamp: {'true' if filter_by_created else 'false'}\n"
            f"    schema:\n{schema}\n"
        )
    training_sets = "".join(
        f"  - name: {kind}\n    spine: {{table: {schema_prefix}spine}}\n"
        f"    features: [{', '.join(refs)}]\n    full_feature_names: {'true' if full else 'false'}\n"
        for kind, (refs, full) in REQUESTS.items()
    )
    text = (
        "entities:\n"
        "  - {name: driver, join_keys: [driver_id], value_type: int64}\n"
        "  - {name: customer, join_keys: [customer_id], value_type: int64}\n"
        "sources:\n" + "".join(sources) + "feature_views:\n" + "".join(views)
        + "training_sets:\n" + training_sets
    )
    return {"specs.yml": text}


def reference_views(request: tuple[tuple[str, ...], bool], rows: dict[str, list[dict]]) -> list[View]:
    """The reference's view list for a feature request, in request order."""
    chosen: dict[str, list[str]] = {}
    for ref in request[0]:
        name, _, feature = ref.partition(":")
        all_features = [f for f, _ in VIEWS[name][1]]
        chosen.setdefault(name, [])
        chosen[name] += [feature] if feature else all_features
    views = []
    for name, features in chosen.items():
        keys, schema, ttl, filter_by_created = VIEWS[name]
        views.append(View(name, keys, tuple(features), ttl, filter_by_created, rows.get(name, []),
                          schema=tuple(f for f, _ in schema)))
    return views


@dataclass
class Harness:
    engine: str  # "duckdb" or "postgres"
    root: Path
    postgres_url: str | None = None
    schema: str = "main"
    rendered: set = field(default_factory=set)  # requests whose whole call and pieces dbt has rendered
    # what the fv_ models' post-hooks run after a build (DuckDB: each view's winners table,
    # macros/event_time_winners.sql), rendered by dbt from the same macro; load() runs it again
    post_build: list = field(default_factory=list)

    # ---- warehouse access -------------------------------------------------------------
    def _duckdb(self):
        import duckdb

        return duckdb.connect(str(self.root / "data" / "warehouse.duckdb"))

    def _postgres(self):
        import psycopg

        return psycopg.connect(self.postgres_url, autocommit=True)

    def _table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def execute(self, *statements: str) -> None:
        if self.engine == "duckdb":
            con = self._duckdb()
            try:
                for statement in statements:
                    con.execute(statement).fetchall()
            finally:
                con.close()
        else:
            with self._postgres() as con:
                for statement in statements:
                    con.execute(statement)

    def query(self, sql: str):
        """A query's result as an Arrow table (for reading back dbt-built models)."""
        if self.engine == "duckdb":
            con = self._duckdb()
            try:
                return con.sql(sql).to_arrow_table()
            finally:
                con.close()
        from featurehouse.dbt.profile import load_target
        from featurehouse.warehouse import connect

        warehouse = connect(load_target(self.root, "pg", self.root), self.root)
        try:
            return warehouse.arrow(sql)
        finally:
            warehouse.close()

    def replace_rows(self, tables: dict[str, tuple[list[tuple[str, str]], list[dict]]], shuffle: int | None = None) -> None:
        """Replace the contents of each table (name -> (columns, rows)), in one connection.

        ``shuffle`` seeds a shuffle of the rows, so that their physical order differs.
        """
        if self.engine == "duckdb":
            import pyarrow as pa

            con = self._duckdb()
            try:
                for table, (columns, rows) in tables.items():
                    names = [c for c, _ in columns]
                    rows = _shuffled(rows, shuffle)
                    fields = [pa.field(c, pa.timestamp("us") if t == "timestamp" else getattr(pa, _ARROW[t])())
                              for c, t in columns]
                    data = pa.Table.from_pylist([{c: r[c] for c in names} for r in rows], schema=pa.schema(fields))
                    con.execute(f"delete from {self._table(table)}").fetchall()
                    con.register("__fh_rows", data)
                    con.execute(f"insert into {self._table(table)} ({', '.join(names)}) select * from __fh_rows").fetchall()
                    con.unregister("__fh_rows")
            finally:
                con.close()
            return
        with self._postgres() as con:
            for table, (columns, rows) in tables.items():
                names = [c for c, _ in columns]
                con.execute(f"delete from {self._table(table)}")
                with con.cursor() as cur, cur.copy(f"copy {self._table(table)} ({', '.join(names)}) from stdin") as copy:
                    for row in _shuffled(rows, shuffle):
                        copy.write_row([row[c] for c in names])

    def load(self, rows: dict[str, list[dict]], shuffle: int | None = None) -> None:
        """Make each fv_<view> table hold exactly ``rows[view]`` (none when absent)."""
        tables = {}
        for name, (keys, features, _, _) in VIEWS.items():
            columns = [(k, "int64") for k in keys] + [(EVENT, "timestamp"), (CREATED, "timestamp")] + features
            tables[f"fv_{name}"] = (columns, rows.get(name, []))
        self.replace_rows(tables, shuffle)
        self.execute(*self.post_build)

    def load_spine(self, spine: list[dict]) -> None:
        """Fill the ``spine`` table the training-set models read (naive UTC times)."""
        columns = [("driver_id", "int64"), ("customer_id", "int64"), (EVENT, "timestamp"), ("label", "string")]
        self.replace_rows({"spine": (columns, spine)})

    # ---- the SDK --------------------------------------------------------------------
    def store(self):
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore(self.root, target="dev" if self.engine == "duckdb" else "pg")

    def historical(self, entity_df: Any, request: tuple[tuple[str, ...], bool], path: str = "whole"):
        """The SDK's training set as an Arrow table.

        ``path="pieces"``: as a call for a feature set never asked before, once ``featurehouse
        compile`` has had dbt render every view's piece: one query per view, no dbt.
        """

        def run():
            return self.store().get_historical_features(
                entity_df=entity_df, features=list(request[0]), full_feature_names=request[1]
            ).to_arrow()

        if path == "whole":
            return run()
        if request not in self.rendered:
            run()  # dbt renders the whole call and the pieces of its views
            self.rendered.add(request)
        with pieces_only():
            return run()


@contextlib.contextmanager
def pieces_only() -> Iterator[None]:
    """Within: the render cache holds only the views' pieces, and starting dbt fails the test."""
    from unittest import mock

    from featurehouse.dbt import rendering
    from featurehouse.plan.joins import PIECE_TIMESTAMP

    real = rendering.lookup

    def only_pieces(root, target, calls):
        return [sql if PIECE_TIMESTAMP in call else None for call, sql in zip(calls, real(root, target, calls))]

    def no_dbt(*args, **kwargs):
        raise AssertionError("the SDK started dbt although every view's piece was rendered")

    with mock.patch.object(rendering, "lookup", only_pieces), mock.patch.object(rendering, "render_many", no_dbt):
        yield


def build(engine: str, root: Path, postgres_url: str | None = None, schema: str | None = None) -> Harness:
    """Write, compile and ``dbt build`` the test repo for ``engine`` ("duckdb" or "postgres")."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    harness = Harness(engine, root, postgres_url, schema or "main")
    prefix = "" if engine == "duckdb" else f"{schema}."
    write_repo(root, _specs(prefix), postgres_url=postgres_url, postgres_schema=schema or "featurehouse_test",
               target="dev")
    # the sources and the spine exist before dbt runs; empty is enough
    statements = [] if engine == "duckdb" else [f'create schema if not exists "{schema}"']
    for name, (keys, features, _, _) in VIEWS.items():
        columns = [f"{k} bigint" for k in keys] + ["event_timestamp timestamp", "created timestamp"]
        columns += [f"{f} {_PG[t]}" for f, t in features]
        statements.append(f"create table {harness._table('raw_' + name)} ({', '.join(columns)})")
    statements.append(
        f"create table {harness._table('spine')} (driver_id bigint, customer_id bigint, event_timestamp timestamp, label text)"
    )
    if engine == "duckdb":
        (root / "data").mkdir(exist_ok=True)
    harness.execute(*statements)
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb" if engine == "duckdb" else "postgres"))
    run_dbt(root, "build", target="dev" if engine == "duckdb" else "pg")
    harness.post_build = winners_hooks(root, "dev" if engine == "duckdb" else "pg")
    return harness


def _shuffled(rows: list[dict], seed: int | None) -> list[dict]:
    rows = list(rows)
    if seed is not None:
        random.Random(seed).shuffle(rows)
    return rows


# ---- values ------------------------------------------------------------------------------
BASE = dt.datetime(2024, 3, 31, 0, 0)  # the night Europe/Paris moves to summer time
MICROSECOND = dt.timedelta(microseconds=1)
GRID = [BASE + dt.timedelta(minutes=30 * k) for k in range(7)]
DRIVERS = [1, 2, 3]
CUSTOMERS = [10, 11]
VALUES: dict[str, list[Any]] = {
    "int64": [None, 0, 1, -1, 2**40],
    "int32": [None, -2, 1, 3],
    # byte order: "" < "B" < "a" < "ab" < "b" < "é"; a linguistic collation disagrees
    "string": [None, "", "a", "B", "b", "ab", "é"],
    "float64": [None, 0.5, -1.25, 3.0],
    "bool": [None, False, True],
    "timestamp": [None, BASE - dt.timedelta(days=1), BASE, BASE + MICROSECOND],
}
ZONES = [None, "UTC", "Europe/Paris", "America/New_York"]


def random_rows(rng: random.Random, per_view: int) -> dict[str, list[dict]]:
    """Feature rows for every view with many ties (few keys, few times, repeated versions)."""
    times = GRID + [t - MICROSECOND for t in GRID] + [t + MICROSECOND for t in GRID]
    rows: dict[str, list[dict]] = {}
    for name, (keys, features, _, _) in VIEWS.items():
        out: list[dict] = []
        for _ in range(per_view):
            if out and rng.random() < 0.4:  # a tie with an earlier row: same keys, event and created
                row = dict(rng.choice(out))
            else:
                row = {k: rng.choice(DRIVERS if k == "driver_id" else CUSTOMERS) for k in keys}
                row[EVENT] = rng.choice(times)
                row[CREATED] = rng.choice([None, row[EVENT], rng.choice(times)])
            for feature, dtype in features:
                row[feature] = rng.choice(VALUES[dtype])
            out.append(row)
        rows[name] = out
    return rows


def random_spine(rng: random.Random, size: int) -> list[dict]:
    """Spine rows (naive UTC times) including unknown entities, NULL times and duplicates."""
    times = GRID + [t - MICROSECOND for t in GRID] + [t + MICROSECOND for t in GRID] + [None]
    spine = []
    for i in range(size):
        if spine and rng.random() < 0.15:
            spine.append(dict(rng.choice(spine)))
            continue
        spine.append({
            "driver_id": rng.choice(DRIVERS + [4]),
            "customer_id": rng.choice(CUSTOMERS + [12]),
            EVENT: rng.choice(times),
            "label": f"l{i}",
        })
    return spine


def entity_df(spine: list[dict], zone: str | None, kind: str):
    """The spine as the user passes it: ``kind`` "pandas" or "arrow", times naive or in ``zone``.

    Returns (entity_df, the Arrow table the SDK sees, so callers can check columns come back unchanged).
    """
    import pandas as pd
    import pyarrow as pa
    from zoneinfo import ZoneInfo

    def zoned(t: dt.datetime | None) -> dt.datetime | None:
        if t is None or zone is None:
            return t
        return t.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(zone))

    times = [zoned(r[EVENT]) for r in spine]
    if kind == "arrow":
        table = pa.table({
            "driver_id": pa.array([r["driver_id"] for r in spine], pa.int64()),
            "customer_id": pa.array([r["customer_id"] for r in spine], pa.int64()),
            EVENT: pa.array(times, pa.timestamp("us", tz=zone)),
            "label": pa.array([r["label"] for r in spine], pa.string()),
        })
        return table, table
    frame = pd.DataFrame({
        "driver_id": pd.array([r["driver_id"] for r in spine], dtype="Int64"),
        "customer_id": pd.array([r["customer_id"] for r in spine], dtype="Int64"),
        EVENT: pd.Series(pd.to_datetime([r[EVENT] for r in spine]), dtype="datetime64[ns]"),
        "label": [r["label"] for r in spine],
    })
    if zone is not None:
        frame[EVENT] = frame[EVENT].dt.tz_localize("UTC").dt.tz_convert(zone)
    return frame, pa.Table.from_pandas(frame, preserve_index=False)


def output_name(request: tuple[tuple[str, ...], bool], view: str, feature: str) -> str:
    return f"{view}__{feature}" if request[1] else feature


def check(result, seen, spine: list[dict], request: tuple[tuple[str, ...], bool], rows: dict[str, list[dict]]) -> None:
    """Assert the SDK's ``result`` is the reference's answer, spine columns unchanged."""
    from support.reference import point_in_time_join, to_utc_naive

    from featurehouse.spec.types import arrow_type

    views = reference_views(request, rows)
    expected = point_in_time_join(spine, views, full_feature_names=request[1])
    features = [(output_name(request, v.name, f), dict(VIEWS[v.name][1])[f]) for v in views for f in v.features]
    assert result.column_names == [*seen.column_names, *(name for name, _ in features)]
    assert result.select(seen.column_names).equals(seen), "spine columns changed"
    for name, dtype in features:
        column = result.column(name)
        assert column.type == arrow_type(dtype), (name, column.type)
        got = column.to_pylist()
        if dtype == "timestamp":
            got = [to_utc_naive(v) for v in got]
        want = [row[name] for row in expected]
        assert got == want, _explain(name, got, want, spine)


def _explain(name: str, got: list, want: list, spine: list[dict]) -> str:
    lines = [f"feature {name}: {sum(g != w for g, w in zip(got, want))} of {len(want)} rows differ"]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            lines.append(f"  spine row {i} {spine[i]}: got {g!r}, expected {w!r}")
    return "\n".join(lines[:12])


# ---- fixtures (a plugin: `pytest_plugins = ["support.pit_harness"]`, so each repo is built once a session) ----
@pytest.fixture(scope="session")
def duckdb_harness(tmp_path_factory) -> Harness:
    return build("duckdb", tmp_path_factory.mktemp("pit_duckdb"))


@pytest.fixture(scope="session")
def postgres_harness(tmp_path_factory, postgres_url: str):
    schema = f"fh_pit_{uuid.uuid4().hex[:10]}"
    harness = build("postgres", tmp_path_factory.mktemp("pit_postgres"), postgres_url, schema)
    # as in a database whose default collation is linguistic: full ties must still compare bytes
    harness.execute(*(
        f'alter table "{schema}"."fv_{view}" alter column "{feature}" type text collate "en-US-x-icu"'
        for view, (_, features, _, _) in VIEWS.items() for feature, dtype in features if dtype == "string"
    ))
    yield harness
    drop_postgres_schema(postgres_url, schema)


@pytest.fixture(params=["duckdb", "postgres"])
def harness(request) -> Harness:
    """Each test once per warehouse."""
    return request.getfixturevalue(f"{request.param}_harness")
