"""Pushes offline: the push log the views' models read beside the batch source.

A pushed row reaches the next training set (after `dbt build`) exactly where the
point-in-time rule puts it; `dbt build` + `sync` agree with what was pushed online; an
empty log and a crashed write (a temporary file) leave the models as they were.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from support import online as so
from support.push import FEATURES, PUSH_SPEC, build_push_repo, fresh_store, online, stats_push_rows
from support.repos import drop_postgres_schema, run_dbt, write_repo

AGGREGATION_SPEC = """\
feature_views:
  - name: stats_activity
    entities: [driver]
    source: stats_source
    aggregations:
      - {column: trips, function: count, window: 1d, name: rows_1d}
    online: false
"""


@pytest.fixture(scope="module")
def now() -> datetime:
    return so.utc_hour()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> Path:
    root = tmp_path_factory.mktemp("push_offline") / "repo"
    so.write_repo(root, {**so.SPECS, "push.yml": PUSH_SPEC, "activity.yml": AGGREGATION_SPEC})
    so.write_data(root, so.stats_rows(range(1, 11), now), so.pairs_rows(range(1, 11), now))
    so.rebuild(root)  # the log is empty: the models build all the same
    return root


def _training(store: Any, driver: int, times: list[datetime], refs: list[str]) -> pd.DataFrame:
    spine = pd.DataFrame({"driver_id": [driver] * len(times), "event_timestamp": times, "label": range(len(times))})
    return store.get_historical_features(spine, refs).to_df()


def test_a_pushed_row_enters_the_next_training_set_where_the_point_in_time_rule_puts_it(
    repo: Path, now: datetime
) -> None:
    from featurehouse.sdk.store import FeatureStore

    store = FeatureStore(repo)
    pushed_at = now - timedelta(minutes=30)
    times = [
        pushed_at - timedelta(microseconds=1),  # before it: the batch source's newest row
        pushed_at,  # a row exactly at t counts
        pushed_at + timedelta(days=1),  # exactly ttl old counts
        pushed_at + timedelta(days=1, microseconds=1),  # older than ttl: nothing (the batch row is older still)
    ]
    before = _training(store, 1, times, ["stats:trips", "stats:city"])
    result = store.push("stats_push", stats_push_rows([1], pushed_at, trips=1234), to="offline")
    assert result.online == {} and result.offline_batch is not None
    assert _training(store, 1, times, ["stats:trips"])["trips"].tolist() == before["trips"].tolist()  # not built yet
    so.rebuild(repo)
    after = _training(store, 1, times, ["stats:trips", "stats:city"])
    assert after["trips"].tolist()[:3] == [before["trips"][0], 1234, 1234]
    assert pd.isna(after["trips"].tolist()[3])
    assert after["city"].tolist()[1:3] == ["pushed", "pushed"]
    assert after["label"].tolist() == [0, 1, 2, 3]  # the spine comes back whole, in order


def test_an_aggregation_over_the_batch_source_counts_pushed_rows(repo: Path, now: datetime) -> None:
    from featurehouse.sdk.store import FeatureStore

    store = FeatureStore(repo)
    at = now + timedelta(hours=1)
    before = _training(store, 2, [at], ["stats_activity:rows_1d"])["rows_1d"].tolist()
    store.push("stats_push", stats_push_rows([2], now - timedelta(minutes=20), trips=5), to="offline")
    so.rebuild(repo)
    assert _training(store, 2, [at], ["stats_activity:rows_1d"])["rows_1d"].tolist() == [before[0] + 1]


def test_build_and_sync_agree_with_what_was_pushed(repo: Path, now: datetime) -> None:
    from featurehouse.sync import sync

    store, _ = fresh_store(repo, "sqlite", None, None, tag="agree")
    sync(store)
    at = now - timedelta(minutes=15)
    store.push("stats_push", stats_push_rows([3, 4], at, conv=0.375, trips=3344), to="online_and_offline")
    pushed = online(store, [3, 4])
    so.rebuild(repo)
    report = sync(store)
    stats = next(v for v in report.views if v.view == "stats")
    assert stats.kept == 0  # the snapshot now holds the pushed rows as they are online
    assert online(store, [3, 4]) == pushed
    training = _training(store, 3, [datetime.utcnow()], FEATURES)
    assert training["trips"].tolist() == [3344] and training["conv_rate"].tolist() == [pytest.approx(0.375)]


def test_a_crashed_write_leaves_no_file_the_models_read(repo: Path, now: datetime) -> None:
    from featurehouse.sdk.store import FeatureStore

    folder = repo / "data" / "push_log" / "stats_push"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".deadbeef.0123.tmp").write_bytes(b"PAR1 half a file")  # what a kill -9 mid-write leaves
    so.rebuild(repo)  # builds: the temporary file is not *.parquet
    store = FeatureStore(repo)
    frame = _training(store, 5, [now], ["stats:trips"])
    assert len(frame) == 1


@pytest.mark.postgres
def test_the_postgres_log_is_a_table_the_models_read(tmp_path: Path, postgres_url: str, now: datetime) -> None:
    from featurehouse.compile import compiler
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.repo import load_repo

    schema = so.unique("h4_pushlog")
    specs = {
        "specs.yml": """\
        entities:
          - name: driver
            join_keys: [driver_id]
            value_type: int64
        sources:
          - name: stats_source
            ref: stats_seed
            timestamp_field: event_timestamp
          - name: stats_push
            push: {batch_source: stats_source}
        feature_views:
          - name: stats
            entities: [driver]
            source: stats_source
            ttl: 1d
            schema:
              - {name: trips, dtype: int64}
        """
    }
    root = write_repo(tmp_path / "repo", specs, postgres_url=postgres_url, postgres_schema=schema, target="pg")
    (root / "seeds").mkdir()
    with open(root / "seeds" / "stats_seed.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["driver_id", "event_timestamp", "trips"])
        writer.writerow([1, (now - timedelta(hours=2)).isoformat(sep=" "), 10])
    try:
        repo = load_repo(root)
        compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "postgres"))
        run_dbt(root, "build", "--quiet", target="pg")  # no log table yet: the model builds
        store = FeatureStore(root, target="pg")
        pushed_at = now - timedelta(hours=1)
        rows = {"driver_id": [1], "event_timestamp": [pushed_at], "trips": [11]}
        store.push("stats_push", rows, to="offline")
        store.push("stats_push", rows, to="offline")  # a retry: the same batch, not a second copy
        run_dbt(root, "build", "--quiet", target="pg")
        spine = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": [pushed_at - timedelta(seconds=1), pushed_at]})
        assert store.get_historical_features(spine, ["stats:trips"]).to_df()["trips"].tolist() == [10, 11]
        import psycopg

        with psycopg.connect(postgres_url) as con:
            count = con.execute(f'select count(*) from "{schema}"."_fh_push_stats_push"').fetchone()
        assert count is not None and count[0] == 1
    finally:
        drop_postgres_schema(postgres_url, schema)
