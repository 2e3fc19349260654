"""Request-time features read online equal the training data at the same instant, computed from the
same request values (DuckDB warehouse, SQLite online store), and every request mistake is one sentence."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from support.online import SPECS, pairs_rows, rebuild, sqlite_store, stats_rows, utc_hour, write_data
from support.repos import write_repo

from featurehouse.errors import RequestError
from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync

REQUEST_SPECS = """\
request_views:
  - name: ride
    request:
      - {name: fare, dtype: float64}
      - {name: passengers, dtype: int64}
      - {name: city, dtype: string}
    schema:
      - {name: fare_per_trip, dtype: float64, expression: "fare / stats__trips"}
      - {name: weighted, dtype: float64, expression: "coalesce(stats__conv_rate, 0) * passengers + 0.5"}
      - {name: same_city, dtype: bool, expression: "city = stats__city"}
      - {name: bucket, dtype: int64, expression: "case when passengers > 2 then passengers % 3 else -1 end"}
training_sets:
  - name: rides
    spine: {ref: ride_labels}
    features: [stats:trips, ride:fare_per_trip, ride:weighted, ride:same_city, ride:bucket]
"""
DRIVERS = range(1, 21)
REFS = ["ride:fare_per_trip", "ride:weighted", "ride:same_city", "ride:bucket"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("request_features")
    now = utc_hour()
    write_repo(root, {**SPECS, "request.yml": REQUEST_SPECS}, online_store=sqlite_store())
    write_data(root, stats_rows(DRIVERS, now), pairs_rows(DRIVERS, now))
    (root / "seeds").mkdir(exist_ok=True)
    at = (now + timedelta(minutes=1)).replace(tzinfo=None)
    request = _request(len(DRIVERS))
    lines = ["driver_id,event_timestamp,fare,passengers,city"] + [
        f"{d},{at.isoformat(sep=' ')},{_csv(request['fare'][i])},{request['passengers'][i]},{_csv(request['city'][i])}"
        for i, d in enumerate(DRIVERS)
    ]
    (root / "seeds" / "ride_labels.csv").write_text("\n".join(lines) + "\n")
    rebuild(root)
    store = FeatureStore(root)
    assert sync(store).written > 0
    return store, now


def _csv(value) -> str:
    return "" if value is None else '""' if value == "" else str(value)


def _request(n: int) -> dict[str, list]:
    fares = [12.5, 0.0, None, -3.25, 1e9]
    cities = ["Berlin", None, "Paris", "", "Lisbon"]
    return {
        "fare": [fares[i % 5] for i in range(n)],
        "passengers": [i % 5 for i in range(n)],
        "city": [cities[i % 5] for i in range(n)],
    }


def test_online_equals_training_data(store):
    store, now = store
    drivers = list(DRIVERS) + [999]
    request = _request(len(drivers))
    online = store.get_online_features(
        REFS + ["stats:trips"], [{"driver_id": d} for d in drivers], request_data=request
    ).to_dict()
    at = now + timedelta(minutes=1)
    spine = pd.DataFrame({"driver_id": drivers, "event_timestamp": [at.replace(tzinfo=None)] * len(drivers), **request})
    offline = store.get_historical_features(spine, REFS + ["stats:trips"]).to_df()
    assert list(offline.columns) == [*spine.columns, "trips", "fare_per_trip", "weighted", "same_city", "bucket"]
    for name in ["trips", "fare_per_trip", "weighted", "same_city", "bucket"]:
        expected = [None if pd.isna(v) else v for v in offline[name].tolist()]
        assert online[name] == expected, name
    assert online["fare_per_trip"][-1] is None  # driver 999: no trips, so NULL, as offline


def test_request_fields_may_be_entity_columns(store):
    store, _ = store
    rows = [{"driver_id": 1, "fare": 10.0, "passengers": 4, "city": "x"}]
    by_rows = store.get_online_features(REFS, rows).to_dict()
    by_data = store.get_online_features(
        REFS, [{"driver_id": 1}], request_data={"fare": [10.0], "passengers": [4], "city": ["x"]}
    ).to_dict()
    assert by_rows == by_data
    assert by_rows["bucket"] == [1]


def test_full_feature_names_prefix_request_features(store):
    store, _ = store
    answer = store.get_online_features(
        ["ride:bucket"], [{"driver_id": 1}], full_feature_names=True, request_data={"passengers": [4]}
    ).to_dict()
    assert answer == {"ride__bucket": [1]}  # the expression reads no feature view: no join keys either


def test_a_missing_request_field_is_one_sentence(store):
    store, _ = store
    with pytest.raises(RequestError, match=r"the request has no 'passengers' \(int64\).*did you mean 'passenger'"):
        store.get_online_features(["ride:bucket"], [{"driver_id": 1}], request_data={"passenger": [3]})


def test_a_request_value_of_the_wrong_type_is_one_sentence(store):
    store, _ = store
    with pytest.raises(RequestError, match=r"request field 'passengers', entity row 0 must be int64, got 'three'"):
        store.get_online_features(["ride:bucket"], [{"driver_id": 1}], request_data={"passengers": ["three"]})


def test_an_unknown_request_feature_is_one_sentence(store):
    store, _ = store
    with pytest.raises(RequestError, match=r"request view 'ride' has no feature 'bucket2' \(did you mean 'bucket'\?\)"):
        store.get_online_features(["ride:bucket2"], [{"driver_id": 1}], request_data={"passengers": [3]})


def test_a_spine_without_the_request_field_is_one_sentence(store):
    store, now = store
    spine = pd.DataFrame({"driver_id": [1], "event_timestamp": [now.replace(tzinfo=None)], "fares": [1.0]})
    with pytest.raises(RequestError, match=r"entity_df has no column 'fare' \(float64\).*did you mean 'fares'"):
        store.get_historical_features(spine, ["ride:fare_per_trip"]).to_df()


def test_the_training_set_model_runs_the_same_expressions(store):
    """dbt builds ts_rides with the SQL the SDK runs: the same rows as get_historical_features."""
    from support.online import _query

    store, _ = store
    model = _query(store.repo_path, 'select * from main."ts_rides" order by driver_id').to_pandas()
    spine = model[["driver_id", "event_timestamp", "fare", "passengers", "city"]]
    sdk = store.get_historical_features(spine, ["stats:trips", *REFS]).to_df()
    for name in ["trips", "fare_per_trip", "weighted", "same_city", "bucket"]:
        left = [None if pd.isna(v) else v for v in model[name].tolist()]
        right = [None if pd.isna(v) else v for v in sdk[name].tolist()]
        assert left == right, name
    assert "stats__conv_rate" in model.columns  # what the expressions read stays in the model, named view__feature


def test_check_covers_request_views_with_sampled_request_data(store):
    from featurehouse.online.check import audit

    store, _ = store
    result = audit(store)
    summary = next(line for line in result.summaries if line.startswith("ride:"))
    assert summary.endswith("entities compared with sampled request data as of the sync, 0 difference(s)"), summary
    assert not [d for d in result.differences if d.startswith("ride")]


def test_a_sql_entity_df_gives_the_same_rows(store):
    store, _ = store
    from_sql = store.get_historical_features("select * from main.ride_labels order by driver_id", REFS).to_df()
    spine = from_sql[["driver_id", "event_timestamp", "fare", "passengers", "city"]]
    from_frame = store.get_historical_features(spine, REFS).to_df()
    assert list(from_sql.columns) == list(from_frame.columns)
    for name in ["fare_per_trip", "weighted", "same_city", "bucket"]:
        left = [None if pd.isna(v) else v for v in from_sql.sort_values("driver_id")[name].tolist()]
        right = [None if pd.isna(v) else v for v in from_frame.sort_values("driver_id")[name].tolist()]
        assert left == right, name
