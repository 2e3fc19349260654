"""The feature server computes request-time features from ``request_context`` (or request fields sent
as entity columns), answers what the SDK answers, and turns request mistakes into one-sentence 400s."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.online import SPECS, pairs_rows, rebuild, sqlite_store, stats_rows, utc_hour, write_data
from support.repos import write_repo

from featurehouse.sdk.store import FeatureStore
from featurehouse.server import create_app
from featurehouse.sync import sync

REQUEST_SPECS = """\
request_views:
  - name: ride
    request:
      - {name: fare, dtype: float64}
      - {name: booked_at, dtype: timestamp}
    schema:
      - {name: fare_per_trip, dtype: float64, expression: "fare / stats__trips"}
      - {name: booked_late, dtype: bool, expression: "booked_at > pairs__last_seen"}
"""
FEATURES = ["stats:trips", "ride:fare_per_trip"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("request_context")
    now = utc_hour()
    write_repo(root, {**SPECS, "request.yml": REQUEST_SPECS}, online_store=sqlite_store())
    write_data(root, stats_rows(range(1, 6), now), pairs_rows(range(1, 6), now))
    rebuild(root)
    sync(FeatureStore(root))
    return root


@pytest.fixture(scope="module")
def client(repo: Path):
    from fastapi.testclient import TestClient

    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        yield test_client


def test_request_context_gives_request_time_features(client, repo: Path) -> None:
    body = {"features": FEATURES, "entities": {"driver_id": [1, 2, 99]}, "request_context": {"fare": [10.0, 0.0, 5.0]}}
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["metadata"]["feature_names"] == ["driver_id", "trips", "fare_per_trip"]
    trips = data["results"][1]["values"]
    sdk = FeatureStore(repo).get_online_features(
        FEATURES, [{"driver_id": d} for d in (1, 2, 99)], request_data={"fare": [10.0, 0.0, 5.0]}
    )
    assert data["results"][2]["values"] == sdk.to_dict()["fare_per_trip"]
    assert data["results"][2]["values"][2] is None  # driver 99 has no trips: NULL, as in the training data
    expected = [None if t in (None, 0) else 10.0 / t if i == 0 else 0.0 for i, t in enumerate(trips[:2])]
    assert data["results"][2]["values"][:2] == expected
    assert data["results"][2]["statuses"] == ["PRESENT"] * 3


def test_request_fields_as_entity_columns_answer_the_same(client) -> None:
    with_context = {"features": FEATURES, "entities": {"driver_id": [1]}, "request_context": {"fare": [3.0]}}
    as_entity = {"features": FEATURES, "entities": {"driver_id": [1], "fare": [3.0]}}
    first = client.post("/get-online-features", json=with_context).json()
    assert client.post("/get-online-features", json=as_entity).json() == first


def test_timestamps_in_request_context_are_iso_strings(client) -> None:
    body = {
        "features": ["ride:booked_late"],
        "entities": {"driver_id": [1], "rider_id": ["r1"]},
        "request_context": {"booked_at": ["2100-01-01T00:00:00Z"]},
    }
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["feature_names"] == ["driver_id", "rider_id", "booked_late"]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"fares": [1.0]}, "the request has no 'fare' (float64), a request field of the requested request-time "
                           "features (did you mean 'fares'?)"),
        ({"fare": ["ten"]}, "request field 'fare', entity row 0 must be float64, got 'ten' (str)"),
        ({"fare": [1.0, 2.0]}, "request_context.fare has 2 values for 1 entity rows"),
        ({"fare": 1.0}, "request_context.fare must be a list of 1 values, got float"),
        (["fare"], "request_context must be an object of request field -> list of values"),
    ],
)
def test_request_context_mistakes_are_one_sentence(client, context, message) -> None:
    body = {"features": FEATURES, "entities": {"driver_id": [1]}, "request_context": context}
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
