"""ttl bounds, created-time ties and filter_by_created_timestamp through the SDK, on a CSV path: source."""

from __future__ import annotations

import pandas as pd
import pytest

from support.repos import run_dbt, write_repo

SPECS = """
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - name: stats
    path: data/stats.csv
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    source: stats
    ttl: 1h
    schema: [{name: conv_rate, dtype: float64}]
  - name: driver_hourly_stats_as_known
    entities: [driver]
    source: stats
    ttl: 1h
    filter_by_created_timestamp: true
    schema: [{name: conv_rate, dtype: float64}]
"""

ROWS = """driver_id,event_timestamp,created,conv_rate
1001,2026-01-01 10:00:00,2026-01-01 10:05:00,0.10
1001,2026-01-01 10:30:00,2026-01-01 10:31:00,0.20
1001,2026-01-01 10:30:00,2026-01-01 12:00:00,0.25
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from featurehouse import FeatureStore
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    root = write_repo(tmp_path_factory.mktemp("readme"), {"stats.yml": SPECS})
    (root / "data" / "stats.csv").write_text(ROWS)
    repo = load_repo(root)
    compiler.write(root / "models" / "featurehouse", compiler.compile_repo(repo, "duckdb"))
    run_dbt(root, "build")
    return FeatureStore(root)


def _at(times: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"driver_id": [1001] * len(times),
                         "event_timestamp": pd.to_datetime([f"2026-01-01 {t}" for t in times])})


def test_ttl_and_tie_example(store):
    result = store.get_historical_features(_at(["09:59", "10:29", "10:30", "11:30", "11:31"]),
                                           ["driver_hourly_stats:conv_rate"]).to_df()
    assert result["conv_rate"].tolist()[1:4] == [0.10, 0.25, 0.25]
    assert result["conv_rate"].isna().tolist() == [True, False, False, False, True]


def test_filter_by_created_example(store):
    result = store.get_historical_features(_at(["10:30", "11:00"]),
                                           ["driver_hourly_stats_as_known:conv_rate"]).to_df()
    assert result["conv_rate"].tolist() == [0.10, 0.20]
