"""Feast's own client reads through `featurehouse serve` (issue 11.9).

A stock Feast 0.67 Python SDK, installed in its own venv (``.venvs/feast-0.67`` at the checkout's
root, built on first use: ~1 min and ~600 MB, then reused), with ``online_store: {type: remote}``
pointing at a real `featurehouse serve` process, asks for several views, missing and expired
entities, a feature service, full feature names, entity values of another JSON type and extra
entity columns; each answer must equal what featurehouse's own SDK answers on the same repo.
The fast tests below pin the same request shapes against the in-process app, without Feast.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.feast_client import feast_python as build_feast_python
from support.feast_client import feast_repo, run_feast
from support.online import build_repo, sqlite_store

with warnings.catch_warnings():  # starlette nags about its httpx-based client; it is the documented one
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

FEATUREHOUSE = str(Path(sys.executable).with_name("featurehouse"))
DRIVERS = range(1, 13)  # driver 9 has only expired rows (ttl 1d), see online_support.stats_rows
STATS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]

# The Feast side: the same entities, views and service as online_support.SPECS, applied to a
# local registry, then read through the remote online store. Prints one JSON object per case.
FEAST_SCRIPT = textwrap.dedent('''
    import json, sys
    from datetime import timedelta
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float32, Float64, Int64, String, UnixTimestamp

    repo, cases = sys.argv[1], json.loads(sys.argv[2])
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.STRING)
    stats_source = FileSource(name="stats_source", path=f"{repo}/stats.parquet", timestamp_field="event_timestamp")
    pair_source = FileSource(name="pair_source", path=f"{repo}/pairs.parquet", timestamp_field="event_timestamp")
    stats = FeatureView(name="stats", entities=[driver], ttl=timedelta(days=1), source=stats_source, online=True,
                        schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
                                Field(name="trips", dtype=Int64), Field(name="city", dtype=String),
                                Field(name="active", dtype=Bool)])
    pairs = FeatureView(name="pairs", entities=[driver, rider], ttl=timedelta(0), source=pair_source, online=True,
                        schema=[Field(name="driver_id", dtype=Int64), Field(name="rider_id", dtype=String),
                                Field(name="rating", dtype=Float64), Field(name="last_seen", dtype=UnixTimestamp)])
    ranking = FeatureService(name="ranking", features=[stats[["conv_rate", "trips"]], pairs[["rating"]]])
    store = FeatureStore(repo_path=repo)
    store.apply([driver, rider, stats, pairs, ranking])
    answers = {}
    for name, case in cases.items():
        features = store.get_feature_service(case["service"]) if "service" in case else case["features"]
        try:
            response = store.get_online_features(
                features=features, entity_rows=case["rows"], full_feature_names=case.get("full", False),
                include_feature_view_version_metadata=case.get("version_metadata", False))
            answers[name] = response.to_dict()
        except Exception as error:
            answers[name] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(answers, default=str))
''')

CASES: dict[str, dict[str, Any]] = {
    # one view; a present, an expired (9) and a missing (999) driver; rows as Feast users write them
    "one_view": {"features": STATS, "rows": [{"driver_id": d} for d in (1, 2, 9, 999, 1)]},
    # two views with different keys; a rider no pair has
    "two_views": {"features": ["stats:trips", "pairs:rating", "pairs:last_seen"],
                  "rows": [{"driver_id": 1, "rider_id": "r:1"}, {"driver_id": 4, "rider_id": "r\\x"},
                           {"driver_id": 2, "rider_id": "nobody"}, {"driver_id": 404, "rider_id": "r:0"}]},
    "service": {"service": "ranking", "rows": [{"driver_id": d, "rider_id": r}
                                               for d, r in ((3, "r:0"), (5, "r\\x"), (9, "r:0"), (77, "r:1"))]},
    "full_names": {"features": ["stats:trips", "stats:city", "pairs:rating"], "full": True,
                   "rows": [{"driver_id": 6, "rider_id": "r:0"}, {"driver_id": 7, "rider_id": "r:2"}]},
    "service_full_names": {"service": "ranking", "full": True, "rows": [{"driver_id": 8, "rider_id": "r:2"}]},
    "whole_view": {"features": ["pairs"], "rows": [{"driver_id": 10, "rider_id": "r:1"}], "version_metadata": True},
}
# what featurehouse's SDK is asked for the same case (the keys as the key's type)
SAME_AS = {
    # an int key sent as a string (Feast's server converts it) and extra entity columns: the join key
    # of an entity no requested view uses is echoed, any other column is ignored
    "key_types_and_extras": (
        {"features": ["stats:trips"], "rows": [{"driver_id": "11", "rider_id": "r:2", "label": 1.5},
                                               {"driver_id": "12", "rider_id": "r:0", "label": 0.0}]},
        {"features": ["stats:trips"], "rows": [{"driver_id": 11}, {"driver_id": 12}]},
        {"rider_id": ["r:2", "r:0"]}),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def feast_python() -> Path:
    """The Feast venv's python, built once per checkout (pip from the package index; ~1 min)."""
    return build_feast_python()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    root = build_repo(tmp_path_factory.mktemp("feast_client") / "repo", DRIVERS, sqlite_store())
    sync(FeatureStore(root))
    return root


@pytest.fixture(scope="module")
def server(repo: Path) -> str:
    """`featurehouse serve` in a subprocess; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([FEATUREHOUSE, "--repo", str(repo), "serve", "--port", str(port),
                                "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "featurehouse serve did not answer /health within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def feast_answers(feast_python: Path, url: str, tmp_path: Path, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    answers: dict[str, Any] = run_feast(feast_python, feast_repo(tmp_path / "feast_repo", url), FEAST_SCRIPT, cases)
    return answers


def sdk_answer(repo: Path, case: dict[str, Any]) -> dict[str, list[Any]]:
    """featurehouse's SDK answer as JSON carries it (timestamps ISO 8601, as the server sends them)."""
    from featurehouse import FeatureStore
    from featurehouse.online.reader import json_value

    answer = FeatureStore(repo).get_online_features(case.get("service") or case["features"], case["rows"],
                                                    full_feature_names=case.get("full", False)).to_dict()
    return {name: [json_value(v) for v in values] for name, values in answer.items()}


def test_feast_client_reads_what_featurehouse_sdk_reads(feast_python: Path, server: str, repo: Path,
                                                         tmp_path: Path) -> None:
    cases = {**CASES, **{name: sent for name, (sent, _, _) in SAME_AS.items()}}
    answers = feast_answers(feast_python, server, tmp_path, cases)
    for name, case in CASES.items():
        expected = sdk_answer(repo, case)
        assert answers[name] == expected, name
        assert list(answers[name]) == list(expected), name  # join keys first, then features in order
    for name, (_, asked, echoed) in SAME_AS.items():
        assert answers[name] == {**sdk_answer(repo, asked), **echoed}, name
    # the cases are not vacuous: found, missing and expired rows all came through
    one_view = answers["one_view"]
    assert one_view["trips"][0] is not None and one_view["trips"][0] == one_view["trips"][4]
    assert one_view["trips"][2] is None and one_view["trips"][3] is None  # expired driver 9, missing 999
    assert answers["two_views"]["rating"][3] is None and answers["two_views"]["last_seen"][0] is not None
    assert set(answers["service_full_names"]) == {"driver_id", "rider_id", "stats__conv_rate", "stats__trips",
                                                  "pairs__rating"}


# ---- the same request shapes, in process (what Feast's server accepts) ----------------------------------------
@pytest.fixture(scope="module")
def client(repo: Path) -> TestClient:
    from featurehouse.server import create_app

    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/get-online-features", json=body)


def test_the_body_feast_remote_store_sends(client: TestClient) -> None:
    # byte for byte the body of feast.infra.online_stores.remote (0.67): it always sends the last field
    body = {"entities": {"driver_id": [1, 999]}, "full_feature_names": False,
            "include_feature_view_version_metadata": False, "features": ["stats:trips"]}
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"feature_names": ["driver_id", "trips"]}
    assert response.json()["results"][1]["statuses"] == ["PRESENT", "NOT_FOUND"]


def test_unknown_fields_are_ignored_as_feast_does(client: TestClient) -> None:
    plain = post(client, {"features": ["stats:trips"], "entities": {"driver_id": [1]}}).json()
    extra = post(client, {"features": ["stats:trips"], "entities": {"driver_id": [1]}, "project": "x",
                          "api_version": 2, "full_feature_nmes": True}).json()
    assert extra == plain


def test_version_metadata_names_the_views_read(client: TestClient) -> None:
    body = {"features": ["pairs:rating", "stats:trips"], "entities": {"driver_id": [1], "rider_id": ["r:1"]},
            "include_feature_view_version_metadata": True}
    metadata = post(client, body).json()["metadata"]
    assert metadata["feature_view_metadata"] == [{"name": "pairs"}, {"name": "stats"}]
    bad = post(client, {**body, "include_feature_view_version_metadata": "yes"})
    assert bad.status_code == 400 and "include_feature_view_version_metadata must be true or false" in bad.text


def test_empty_features_beside_a_feature_service(client: TestClient) -> None:
    rows = {"driver_id": [1], "rider_id": ["r:1"]}
    alone = post(client, {"feature_service": "ranking", "entities": rows})
    beside = post(client, {"feature_service": "ranking", "features": [], "entities": rows})
    assert alone.status_code == beside.status_code == 200 and alone.json() == beside.json()
    # two different answers to "which features?" stay a mistake (Feast silently takes the service)
    both = post(client, {"feature_service": "ranking", "features": ["stats:trips"], "entities": rows})
    assert both.status_code == 400 and "either features or feature_service" in both.json()["error"]


@pytest.mark.parametrize("sent,key,expected", [
    (["1", "+2", "0003", 4.0, 5], "driver_id", [1, 2, 3, 4, 5]),
    ([1, 2], "rider_id", ["1", "2"]),
])
def test_key_values_that_convert_exactly_are_accepted(client: TestClient, sent: list[Any], key: str,
                                                      expected: list[Any]) -> None:
    other = {"rider_id": ["r:1"] * len(sent)} if key == "driver_id" else {"driver_id": [1] * len(sent)}
    converted = post(client, {"features": ["pairs:rating"], "entities": {key: sent, **other}})
    exact = post(client, {"features": ["pairs:rating"], "entities": {key: expected, **other}})
    assert converted.status_code == 200, converted.text
    assert converted.json() == exact.json()


@pytest.mark.parametrize("value,why", [
    ("1.5", "must be an integer"), (1.5, "must be an integer"), (" 1", "must be an integer"),
    ("1e3", "must be an integer"), (True, "must be an integer"), ("٣", "must be an integer"),
    ("1_000", "must be an integer"), ("9" * 30, "must be an integer"), ("99999999999999999999", "outside its range"),
])
def test_key_values_that_do_not_convert_exactly_are_refused(client: TestClient, value: Any, why: str) -> None:
    response = post(client, {"features": ["stats:trips"], "entities": {"driver_id": [1, value]}})
    assert response.status_code == 400
    assert response.json()["error"].startswith("entity row 1: join key 'driver_id' of entity 'driver'")
    assert why in response.json()["error"]


def test_extra_entity_columns(client: TestClient) -> None:
    body = {"features": ["stats:trips"], "entities": {"label": [0.5, 1.5], "rider_id": ["r:1", "r:2"],
                                                      "driver_id": [1, 2]}}
    data = post(client, body).json()
    # every join key sent comes back, in the body's order (as Feast's server does); other columns do not
    assert data["metadata"]["feature_names"] == ["rider_id", "driver_id", "trips"]
    assert data["results"][0] == {"values": ["r:1", "r:2"], "statuses": ["PRESENT"] * 2,
                                  "event_timestamps": ["1970-01-01T00:00:00Z"] * 2}
    # an unused join key is still checked against its type
    bad = post(client, {**body, "entities": {"driver_id": [1], "rider_id": [[1]]}})
    assert bad.status_code == 400 and "join key 'rider_id' of entity 'rider' must be a string" in bad.json()["error"]
    # a misspelt key the request needs: the reader's did-you-mean points at it
    typo = post(client, {"features": ["stats:trips"], "entities": {"driverid": [1]}})
    assert typo.status_code == 400 and "(did you mean 'driverid'?)" in typo.json()["error"]


def test_an_entity_name_stands_for_its_join_key(client: TestClient) -> None:
    by_key = post(client, {"features": ["stats:trips"], "entities": {"driver_id": [1, 2]}}).json()
    by_name = post(client, {"features": ["stats:trips"], "entities": {"driver": [1, 2]}}).json()
    assert by_name == by_key
    both = post(client, {"features": ["stats:trips"], "entities": {"driver": [1], "driver_id": [1]}})
    assert both.status_code == 400 and "send only 'driver_id'" in both.json()["error"]
