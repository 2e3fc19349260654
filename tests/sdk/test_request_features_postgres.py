"""get_historical_features with request-time features on Postgres: the point-in-time macro and the
expressions around it, against the online evaluator applied to the same joined values."""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
import pytest
from support.repos import drop_postgres_schema, run_dbt, write_repo

from featurehouse.compile import compiler
from featurehouse.online.request_features import compile_feature
from featurehouse.sdk.store import FeatureStore
from featurehouse.spec.repo import load_repo
from featurehouse.spec.request_views import compiled

pytestmark = pytest.mark.postgres

SPECS = """\
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, ref: raw_stats, timestamp_field: event_timestamp}
feature_views:
  - name: st
    entities: [driver]
    source: stats
    schema:
      - {name: trips, dtype: int64}
      - {name: rate, dtype: float32}
      - {name: city, dtype: string}
request_views:
  - name: rv
    request:
      - {name: fare, dtype: float64}
      - {name: seats, dtype: int64}
      - {name: city, dtype: string}
    schema:
      - {name: per_trip, dtype: float64, expression: "fare / st__trips"}
      - {name: bucket, dtype: int64, expression: "case when seats > st__trips then seats % 3 else -seats end"}
      - {name: same_city, dtype: bool, expression: "city = st__city"}
      - {name: scaled, dtype: float32, expression: "st__rate * seats + 0.1"}
"""
SEED = """\
driver_id,event_timestamp,trips,rate,city
1,2026-01-01 00:00:00,0,0.5,Berlin
1,2026-01-02 00:00:00,4,0.25,Paris
2,2026-01-01 12:00:00,7,,
3,2026-01-01 00:00:00,-3,1.5,Lisbon
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory, postgres_url):
    schema = f"h5_req_{uuid.uuid4().hex[:8]}"
    root = write_repo(tmp_path_factory.mktemp("request_pg"), {"specs.yml": SPECS}, postgres_url=postgres_url,
                      postgres_schema=schema, target="pg")
    (root / "seeds").mkdir(exist_ok=True)
    (root / "seeds" / "raw_stats.csv").write_text(SEED)
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "postgres"))
    run_dbt(root, "build", "--quiet")
    yield FeatureStore(root)
    drop_postgres_schema(postgres_url, schema)


def test_postgres_training_rows_equal_the_online_evaluator(store):
    spine = pd.DataFrame(
        {
            "driver_id": [1, 1, 2, 3, 4, 1],
            "event_timestamp": [datetime(2026, 1, 1, 6), datetime(2026, 1, 3), datetime(2026, 1, 2), datetime(2026, 1, 2),
                                datetime(2026, 1, 2), datetime(2025, 12, 1)],
            "fare": [10.0, 10.0, None, -4.5, 3.0, 1.0],
            "seats": [3, 5, 2, 1, None, 0],
            "city": ["Berlin", "Paris", None, "x", "y", "Berlin"],
        }
    )
    spine["seats"] = spine["seats"].astype("Int64")
    refs = ["st:trips", "st:rate", "st:city", "rv:per_trip", "rv:bucket", "rv:same_city", "rv:scaled"]
    out = store.get_historical_features(spine, refs, full_feature_names=True).to_arrow().to_pylist()
    plan = compiled(store.repo, store.repo.request_views["rv"])
    order = ["fare", "seats", "city", "st__trips", "st__rate", "st__city"]

    def slot(node):
        return order.index(node.value if node.op == "field" else f"{node.value[0]}__{node.value[1]}")

    for row in out:
        env = [row["fare"], row["seats"], row["city"], row["st__trips"], row["st__rate"], row["st__city"]]
        for feature in plan.features:
            expected = compile_feature(feature, slot, "rv")(env)
            assert row[f"rv__{feature.name}"] == expected, (feature.name, row)
    assert [r["rv__per_trip"] for r in out][:2] == [None, 2.5]  # trips 0 on Jan 1: a zero divisor is NULL
    assert [r["rv__bucket"] for r in out] == [0, 2, -2, 1, None, 0]
