"""Aggregation views online: synced to SQLite, Postgres and Redis, they read what training data gives.

One repo (DuckDB warehouse) is built once, with its snapshots pinned by the dbt var
``featurehouse_as_of``, and synced to each store. Reads must equal
``get_historical_features`` at the as-of time, for entities in the snapshot, entities
whose windows emptied, and entities that never had an event; ``featurehouse check`` must
agree and must notice a value changed in the store.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync
from featurehouse.online.check import audit
from support.online import (
    KINDS,
    drop_store,
    online_values,
    postgres_store,
    redis_store,
    set_store,
    sqlite_store,
    sync_to_every_store,
    unique,
)
from support.repos import run_dbt, write_repo

AS_OF = datetime(2026, 3, 1, 12, 0)  # naive UTC
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
US = timedelta(microseconds=1)

SPECS = {"specs.yml": """\
entities:
  - {name: card, join_keys: [card_id], value_type: int64}
sources:
  - {name: tx, path: data/tx.parquet, timestamp_field: ts}
  - {name: limits, path: data/limits.parquet, timestamp_field: event_timestamp}
feature_views:
  - name: card_activity
    entities: [card]
    source: tx
    aggregations:
      - {column: amount, function: count, window: 1h}
      - {column: amount, function: sum, window: 1d}
      - {column: amount, function: mean, window: 1d}
      - {column: amount, function: stddev, window: 1d}
      - {column: amount, function: max, window: 7d}
    online: true
  - name: card_limit
    entities: [card]
    source: limits
    schema:
      - {name: credit_limit, dtype: float64}
    online: true
"""}
ACTIVITY = ["amount_count_1h", "amount_sum_1d", "amount_mean_1d", "amount_stddev_1d", "amount_max_7d"]
REFS = [f"card_activity:{name}" for name in ACTIVITY]

# (card, time, amount)
EVENTS = [
    (1, AS_OF, 2.5),                  # exactly at the as-of time: in every window
    (1, AS_OF - HOUR, 100.0),         # exactly 1h old: out of the 1h window, in 1d
    (1, AS_OF - HOUR + US, 0.1),      # just inside 1h
    (1, AS_OF - 3 * DAY, 7.0),        # only in the 7d window
    (1, AS_OF + US, 1000.0),          # after the as-of time: not in the snapshot
    (2, AS_OF - 8 * DAY, 5.0),        # card 2: every window empty by then, still in the snapshot
    (3, AS_OF - timedelta(minutes=10), None),  # a NULL amount: not counted
    (3, AS_OF - 2 * HOUR, 0.7),
    (4, AS_OF - 5 * HOUR, 0.1),       # sums that depend on the order of addition
    (4, AS_OF - 4 * HOUR, 0.2),
    (4, AS_OF - 3 * HOUR, 0.3),
    (4, AS_OF - 2 * HOUR, 1e6 + 0.3),
    (5, AS_OF + HOUR, 9.0),           # card 5's only event is later: not in the snapshot
]
CARDS = [1, 2, 3, 4, 5, 99]           # 99 never had an event
IN_SNAPSHOT = [1, 2, 3, 4]


def _write_data(root: Path) -> None:
    pq.write_table(pa.table({
        "card_id": pa.array([e[0] for e in EVENTS], pa.int64()),
        "ts": pa.array([e[1] for e in EVENTS], pa.timestamp("us")),
        "amount": pa.array([e[2] for e in EVENTS], pa.float64()),
    }), root / "data" / "tx.parquet")
    pq.write_table(pa.table({
        "card_id": pa.array([1, 1, 2], pa.int64()),
        "event_timestamp": pa.array([AS_OF - DAY, AS_OF + HOUR, AS_OF - DAY], pa.timestamp("us")),
        "credit_limit": [500.0, 900.0, 300.0],
    }), root / "data" / "limits.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory, postgres_url, redis_url):
    """The repo built as of AS_OF and synced to every kind of store: (root, {kind: FeatureStore}, configs)."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    root = tmp_path_factory.mktemp("online_aggregations")
    write_repo(root, SPECS)
    _write_data(root)
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    # an offset in the var: the same instant as AS_OF in UTC
    run_dbt(root, "build", "--quiet", "--vars", "{featurehouse_as_of: '2026-03-01T13:00:00+01:00'}")
    synced = sync_to_every_store(root, postgres_url, redis_url, "aggs")
    stores, configs = synced.stores, synced.configs
    for report in synced.reports.values():
        assert report.written == report.rows_read == len(IN_SNAPSHOT) + 2  # + card_limit's two cards
    yield root, stores, configs
    synced.drop(postgres_url, redis_url)


def _training(store: FeatureStore, cards: list[int], refs: list[str], at: datetime) -> dict[str, list[Any]]:
    spine = pa.table({"card_id": pa.array(cards, pa.int64()),
                      "event_timestamp": pa.array([at] * len(cards), pa.timestamp("us"))})
    table = store.get_historical_features(spine, refs).to_arrow()
    return {r.split(":")[1]: table.column(r.split(":")[1]).to_pylist() for r in refs}


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(got, expected, rel_tol=1e-9)
    return got == expected and type(got) is type(expected)


def test_snapshots_are_taken_at_the_as_of_var(built):
    """Both kinds of online_ model use featurehouse_as_of: nothing after it is in either."""
    from support.online import snapshot

    root, _, _ = built
    activity = snapshot(root, "card_activity").sort_by("card_id").to_pylist()
    assert [r["card_id"] for r in activity] == IN_SNAPSHOT
    assert {r["event_timestamp"].replace(tzinfo=None) for r in activity} == {AS_OF}
    limits = snapshot(root, "card_limit").sort_by("card_id").to_pylist()
    assert [(r["card_id"], r["credit_limit"]) for r in limits] == [(1, 500.0), (2, 300.0)]  # not the 900 at AS_OF + 1h


@pytest.mark.parametrize("kind", KINDS)
def test_reads_equal_training_data_at_the_as_of_time(built, kind):
    _, stores, _ = built
    store = stores[kind]
    expected = _training(store, CARDS, REFS, AS_OF)
    # read a while after the as-of time: the view has no ttl, so the values are served as they are
    response = online_values(store, REFS, {"card_id": CARDS}, AS_OF + 2 * DAY)
    for name in ACTIVITY:
        for card, got, want in zip(CARDS, response.values[name], expected[name]):
            assert _same(got, want), (kind, name, card, got, want)
    # the cases spelled out, so that a wrong reference cannot hide them
    values = {name: dict(zip(CARDS, response.values[name])) for name in ACTIVITY}
    assert values["amount_count_1h"] == {1: 2, 2: 0, 3: 0, 4: 0, 5: 0, 99: 0}
    assert values["amount_sum_1d"][1] == pytest.approx(102.6) and values["amount_max_7d"][1] == 100.0
    assert values["amount_sum_1d"][2] is None and values["amount_stddev_1d"][3] is None
    assert all(type(v) is int for v in values["amount_count_1h"].values())  # count is int64 in every store
    statuses = dict(zip(CARDS, response.statuses["amount_count_1h"]))
    assert statuses == {1: "PRESENT", 2: "PRESENT", 3: "PRESENT", 4: "PRESENT", 5: "NOT_FOUND", 99: "NOT_FOUND"}
    stamps = dict(zip(CARDS, response.event_timestamps["amount_sum_1d"]))
    assert {stamps[c] for c in IN_SNAPSHOT} == {AS_OF.replace(tzinfo=timezone.utc)} and stamps[99] is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_view_never_synced_reads_nothing_not_an_empty_window(built, kind, postgres_url, redis_url):
    """Count 0 for a missing entity needs a synced snapshot; before the first sync nothing is known."""
    root, _, _ = built
    name = unique("fh_partial")
    config = {"sqlite": sqlite_store(f"data/{name}.db"), "postgres": postgres_store(postgres_url, name),
              "redis": redis_store(redis_url, name)}[kind]
    set_store(root, config)
    try:
        store = FeatureStore(root)
        sync(store, ["card_limit"])
        response = online_values(store, ["card_activity:amount_count_1h", "card_limit:credit_limit"],
                                 {"card_id": [1]}, AS_OF)
        assert response.statuses["amount_count_1h"] == ["NOT_FOUND"] and response.values["amount_count_1h"] == [None]
        assert response.values["credit_limit"] == [500.0]
        sync(store, ["card_activity"])
        response = online_values(store, ["card_activity:amount_count_1h"], {"card_id": [1, 99]}, AS_OF)
        assert response.values["amount_count_1h"] == [2, 0]
    finally:
        set_store(root, sqlite_store())
        drop_store(kind, postgres_url if kind == "postgres" else redis_url, name)  # SQLite: tmp_path goes


def _tamper(kind: str, store: FeatureStore, config: str, card: int, feature: str, value: float) -> None:
    """Overwrite one stored value behind the sync's back."""
    if kind == "sqlite":
        con = sqlite3.connect(store.repo_path / "data" / "online.db")
        with con:
            con.execute(f'UPDATE card_activity SET "{feature}" = ? WHERE card_id = ?', (value, card))
        con.close()
    elif kind == "postgres":
        import psycopg

        url, schema = config.split("url: ")[1].split()[0], config.split("schema: ")[1].strip()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'UPDATE "{schema}".card_activity SET "{feature}" = %s WHERE card_id = %s', (value, card))
    else:
        import redis

        url, prefix = config.split("url: ")[1].split()[0], config.split("key_prefix: ")[1].strip()
        client = redis.Redis.from_url(url)
        client.hset(f"{prefix}:card_activity:{card}", feature, repr(value))
        client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_check_compares_at_the_as_of_time_and_finds_a_tampered_value(built, kind):
    root, stores, configs = built
    store = stores[kind]
    clean = audit(store, ["card_activity"])
    assert clean.differences == []
    [summary] = clean.summaries
    assert summary.startswith(f"card_activity: {len(IN_SNAPSHOT)} entities compared at the snapshot's as-of time "
                              "2026-03-01 12:00:00 UTC (synced at ")
    assert summary.endswith(", 0 difference(s)")
    total = online_values(store, ["card_activity:amount_sum_1d"], {"card_id": [4]}).values["amount_sum_1d"][0]
    try:
        # a difference in the last bits, as another order of addition gives: not skew
        _tamper(kind, store, configs[kind], 4, "amount_sum_1d", total * (1 + 1e-12))
        assert audit(store, ["card_activity"]).differences == []
        _tamper(kind, store, configs[kind], 4, "amount_sum_1d", total * (1 + 1e-6))
        found = audit(store, ["card_activity"]).differences
        assert len(found) == 1 and found[0].startswith("card_activity [card_id=4] amount_sum_1d: online ")
        assert found[0].endswith("at 2026-03-01 12:00:00")
        set_store(root, configs[kind])
        result = CliRunner().invoke(main, ["--repo", str(root), "check", "--views", "card_activity"])
        assert result.exit_code == 1 and "1 difference(s)" in result.output, result.output
    finally:
        set_store(root, configs[kind])
        sync(FeatureStore(root), ["card_activity"], full_refresh=True)
        result = CliRunner().invoke(main, ["--repo", str(root), "check", "--views", "card_activity"])
        set_store(root, sqlite_store())
    assert result.exit_code == 0 and "0 difference(s)" in result.output, result.output


def test_check_of_a_snapshot_older_than_its_ttl_reports_staleness_not_skew(tmp_path):
    """Synced long after the as-of time, a view with a ttl serves OUTSIDE_MAX_AGE: that is the
    ttl at work, and training data at the as-of time still equals what the store holds."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    root = tmp_path / "repo"
    write_repo(root, {"specs.yml": SPECS["specs.yml"].replace("    source: tx\n", "    source: tx\n    ttl: 1d\n")})
    _write_data(root)
    compiler.write(root / "models" / "featurehouse", compiler.compile_repo(load_repo(root), "duckdb"))
    run_dbt(root, "build", "--quiet", "--vars", "{featurehouse_as_of: '2026-03-01T12:00:00'}")
    store = FeatureStore(root)
    sync(store)
    assert set(online_values(store, ["card_activity:amount_sum_1d"], {"card_id": [1]}).statuses["amount_sum_1d"]) == {
        "OUTSIDE_MAX_AGE"}
    result = audit(store, ["card_activity"])
    assert result.differences == []
    [summary] = result.summaries
    assert "the snapshot was already older than the ttl when synced, so reads give OUTSIDE_MAX_AGE" in summary
