"""POST /push and POST /write-to-online-store with Feast 0.67's request bodies.

Feast's bodies: ``{"push_source_name", "df": {column: [values]}, "to", "allow_registry_cache",
"transform_on_write"}`` and ``{"feature_view_name", "df", ...}``. Bad rows get a 400 naming
the row and the column, an oversize body a 413, a failing store a 503 that says what was
written and never where the store is.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from featurehouse.server import MAX_BODY_BYTES, create_app
from support import online as so
from support.push import build_push_repo, fresh_store

NOW = so.utc_hour()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_push_repo(tmp_path_factory.mktemp("push_http") / "repo", range(1, 6), NOW)
    store, _ = fresh_store(root, "sqlite", None, None, tag="http")
    from featurehouse.sync import sync

    sync(store)
    return root


@pytest.fixture(scope="module")
def client(repo: Path) -> Any:
    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        yield test_client


def _df(drivers: list[int], trips: int, minutes: int = 10) -> dict[str, list[Any]]:
    at = (NOW - timedelta(minutes=minutes)).isoformat() + "Z"  # JSON carries timestamps as ISO text
    return {
        "driver_id": drivers,
        "event_timestamp": [at] * len(drivers),
        "conv_rate": [0.5] * len(drivers),
        "trips": [trips] * len(drivers),
        "city": ["http"] * len(drivers),
        "active": [True] * len(drivers),
    }


def _trips(client: TestClient, drivers: list[int]) -> list[Any]:
    answer = client.post("/get-online-features", json={"features": ["stats:trips"], "entities": {"driver_id": drivers}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return list(body["results"][body["metadata"]["feature_names"].index("trips")]["values"])


def test_feast_push_body_writes_online(client: TestClient) -> None:
    body = {
        "push_source_name": "stats_push",
        "df": _df([1, 2], 71),
        "allow_registry_cache": True,
        "to": "online",
        "transform_on_write": True,
    }
    answer = client.post("/push", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["online"] == {"stats": 2}
    assert _trips(client, [1, 2]) == [71, 71]


def test_push_to_online_and_offline_names_the_log_batch(client: TestClient, repo: Path) -> None:
    answer = client.post(
        "/push", json={"push_source_name": "stats_push", "df": _df([3], 72), "to": "online_and_offline"}
    )
    assert answer.status_code == 200, answer.text
    batch = answer.json()["offline_batch"]
    assert (repo / "data" / "push_log" / "stats_push" / f"{batch}.parquet").exists()
    assert _trips(client, [3]) == [72]


def test_feast_write_to_online_store_body(client: TestClient) -> None:
    df = _df([4], 73, minutes=5)
    df["event_timestamp"] = df.pop("event_timestamp")
    answer = client.post(
        "/write-to-online-store", json={"feature_view_name": "stats", "df": df, "allow_registry_cache": True}
    )
    assert answer.status_code == 200, answer.text
    assert _trips(client, [4]) == [73]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"push_source_name": "stats_push", "df": {**_df([1, 2], 1), "trips": [1, "two"]}},
            "push source 'stats_push': row 1, column 'trips': expected an integer (int64), got 'two'; nothing was written",
        ),
        (
            {"push_source_name": "stats_push", "df": {**_df([1], 1), "driver_id": [None]}},
            "row 0, column 'driver_id': a join key may not be null",
        ),
        ({"push_source_name": "stat_push", "df": {}}, "unknown push source 'stat_push' (did you mean 'stats_push'?)"),
        ({"push_source": "stats_push", "df": {}}, "missing field 'push_source_name' (did you mean 'push_source'?)"),
        ({"push_source_name": "stats_push", "df": [1, 2]}, "df: expected an object of columns"),
        ({"push_source_name": "stats_push", "df": {"driver_id": 1}}, "df: column 'driver_id' must be a list"),
        ({"push_source_name": "stats_push", "df": _df([1], 1), "to": "both"}, "to: expected one of online, offline"),
        ({"feature_view_name": "stat", "df": _df([1], 1)}, "unknown feature view 'stat' (did you mean 'stats'?)"),
    ],
)
def test_bad_requests_get_400_with_one_sentence(client: TestClient, body: dict[str, Any], message: str) -> None:
    before = _trips(client, [1, 2])
    path = "/write-to-online-store" if "feature_view_name" in body else "/push"
    answer = client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert _trips(client, [1, 2]) == before


def test_not_json_is_400(client: TestClient) -> None:
    answer = client.post("/push", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_an_oversize_body_is_413_and_writes_nothing(client: TestClient) -> None:
    before = _trips(client, [5])
    count = MAX_BODY_BYTES // 20
    df = _df([5] * count, 99)
    body = json.dumps({"push_source_name": "stats_push", "df": df}).encode()
    assert len(body) > MAX_BODY_BYTES
    answer = client.post("/push", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["error"] == f"the request body is larger than {MAX_BODY_BYTES} bytes"
    assert _trips(client, [5]) == before


def test_too_many_rows_is_400(client: TestClient) -> None:
    from featurehouse.online.push import MAX_PUSH_ROWS

    count = MAX_PUSH_ROWS + 1
    df = {"driver_id": list(range(count)), "event_timestamp": ["2026-01-01"] * count}
    answer = client.post("/push", json={"push_source_name": "stats_push", "df": df})
    assert answer.status_code == 400
    assert f"{count:,} rows in one push; the limit is {MAX_PUSH_ROWS:,} per call" in answer.json()["error"]


def test_a_failing_store_is_503_saying_what_was_written(
    client: TestClient, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featurehouse.errors import OnlineStoreError
    from featurehouse.online import push as push_module

    def broken(self: Any, *args: Any) -> Any:
        raise OnlineStoreError(f"the SQLite online store {repo}/data/secret.db is locked")

    monkeypatch.setattr(push_module.Pusher, "write", broken)
    body = {"push_source_name": "stats_push", "df": _df([5], 98), "to": "online_and_offline"}
    answer = client.post("/push", json=body)
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error.startswith("push source 'stats_push': writing online view 'stats' failed (the server log")
    assert "written: the push log (batch " in error and "pushing the same rows again is harmless" in error
    assert str(repo) not in error
    monkeypatch.undo()
    assert client.post("/push", json=body).status_code == 200  # the retry
    assert _trips(client, [5]) == [98]


def test_the_body_feast_remote_online_store_sends(client: TestClient) -> None:
    # the body of feast.infra.online_stores.remote.RemoteOnlineStore.online_write_batch (0.67): join keys,
    # features, naive-UTC ISO "event_timestamp" and "created" (None when the row has none)
    at = (NOW - timedelta(minutes=4)).isoformat()
    body = {
        "feature_view_name": "stats",
        "df": {
            "driver_id": [6, 7],
            "conv_rate": [0.25, 0.75],
            "trips": [606, 707],
            "city": ["feast", None],
            "active": [False, True],
            "event_timestamp": [at, at],
            "created": [None, at],
        },
        "allow_registry_cache": False,
    }
    answer = client.post("/write-to-online-store", json=body)
    assert answer.status_code == 200, answer.text
    assert _trips(client, [6, 7]) == [606, 707]
