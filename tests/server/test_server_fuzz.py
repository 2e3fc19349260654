"""Fuzzing /get-online-features: whatever a client sends, the answer is a 2xx or a 4xx with one
sentence of JSON, never a 5xx, and the server keeps answering.

Bodies come from hypothesis: raw bytes (invalid UTF-8, truncated JSON, NaN, huge numbers, deep
nesting), arbitrary JSON values, and Feast-shaped bodies whose every field may be wrong (types,
unknown features and views, entity names and columns, mismatched list lengths, unicode). They are
posted in-process (starlette's TestClient) to the app `featurehouse serve` runs, over a real synced
SQLite online store. The example count is bounded so that the module runs in well under 30 s
after its repo is built.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.online import build_repo, sqlite_store

with warnings.catch_warnings():  # starlette nags about its httpx-based client; it is the documented one
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow  # the repo is built with dbt once for the module

VALID_REFS = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active", "pairs:rating", "pairs:last_seen",
              "stats", "pairs"]
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    from featurehouse.server import create_app
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    root = build_repo(tmp_path_factory.mktemp("fuzz") / "repo", range(1, 6), sqlite_store())
    sync(FeatureStore(root))
    with TestClient(create_app(root), raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, content: bytes) -> Any:
    response = client.post("/get-online-features", content=content, headers={"content-type": "application/json"})
    check_answer(response)
    return response


def check_answer(response: Any) -> None:
    """2xx with Feast's shape, or 4xx with exactly {"error": "<one line>"}; never anything else."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    body = json.loads(response.content)  # strict: valid JSON, no NaN
    if response.status_code >= 400:
        assert 400 <= response.status_code < 500
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
        assert "\n" not in body["error"] and "\r" not in body["error"] and "Traceback" not in body["error"]
        assert len(body["error"]) <= 1000
        return
    assert response.status_code == 200
    names, results = body["metadata"]["feature_names"], body["results"]
    assert len(names) == len(results) == len(set(names))
    rows = {len(r["values"]) for r in results} | {len(r["statuses"]) for r in results}
    assert len(rows) == 1
    for result in results:
        assert set(result["statuses"]) <= {"PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"}


# ---- strategies ------------------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["1001", "1", "-3", "+2", "1e3", " 1", "٣", "1_000", "r:1", "r\\x", "", "\x00", "\u202e"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
names = st.one_of(st.sampled_from(["driver_id", "rider_id", "driver", "rider", "driverid", "label", "", "stats"]),
                  st.text(max_size=20))
refs = st.one_of(st.sampled_from(VALID_REFS), st.sampled_from(["stats:", ":conv_rate", "stats:nope", "nope:x",
                                                                "ranking", "stats:conv_rate:x", "pairs:rating "]),
                 st.text(max_size=30), json_values)
key_values = st.one_of(st.integers(min_value=0, max_value=8), st.sampled_from(["r:1", "r\\x", "1", "2"]), scalars)


@st.composite
def feast_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A Feast request body in which any field may be missing, mistyped or misspelt."""
    rows = draw(st.integers(min_value=0, max_value=4))
    body: dict[str, Any] = {}
    choice = draw(st.sampled_from(["features", "service", "both", "neither"]))
    if choice in ("features", "both"):
        body["features"] = draw(st.one_of(st.lists(refs, max_size=5), json_values))
    if choice in ("service", "both"):
        body["feature_service"] = draw(st.one_of(st.sampled_from(["ranking", "rankin", ""]), json_values))
    if draw(st.booleans()):
        columns = draw(st.dictionaries(names, st.integers(min_value=0, max_value=4), max_size=4))
        entities: Any = {
            name: draw(st.lists(key_values, min_size=size, max_size=size)) if draw(st.integers(0, 9)) else
            draw(json_values)
            for name, size in ((n, rows if draw(st.integers(0, 5)) else s) for n, s in columns.items())
        }
        body["entities"] = entities
    elif draw(st.booleans()):
        body["entities"] = draw(json_values)
    for field in ("full_feature_names", "include_feature_view_version_metadata", "request_context"):
        if draw(st.booleans()):
            body[field] = draw(st.one_of(st.booleans(), json_values))
    body.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return body


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([
        b"NaN", b"Infinity", b'{"features": NaN}', b'{"features": ["stats:trips"], "entities": {"driver_id": [NaN]}}',
        b'{"features": ["stats:trips"], "entities": {"driver_id": [1e999]}}',
        b'{"features": ["stats:trips"], "entities": {"driver_id": [' + b"9" * 5000 + b"]}}",
        b'{"features": ["stats:trips"], "entities": {"driver_id": [1]}, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"features": ["stats:trips"], "entities": {"driver_id": [' + b"[" * 1000 + b"]" * 1000 + b"]}}",
        b'{"features": ["stats:trips"], "entities": {"driver_id": ["\xff\xfe"]}}',
        b'{"features": ["stats:trips"], "entities": {"driver_id": ["\\ud800"]}}',
        b'{"features": ["stats:trips"], "entities": {"driver_id": [1]}}\x00',
        b'\xef\xbb\xbf{"features": ["stats:trips"], "entities": {"driver_id": [1]}}',
        b'{"features": ["stats:trips"], "features": 1, "entities": {"driver_id": [1]}}',
    ]),
)


# ---- the properties ----------------------------------------------------------------------------------------
@FUZZ
@given(body=raw_bodies)
def test_raw_bytes_never_get_a_5xx(client: TestClient, body: bytes) -> None:
    post(client, body)


@FUZZ
@given(body=json_values)
def test_any_json_value_never_gets_a_5xx(client: TestClient, body: Any) -> None:
    post(client, json.dumps(body).encode())


@settings(FUZZ, max_examples=400)
@given(body=feast_bodies())
def test_feast_shaped_bodies_never_get_a_5xx(client: TestClient, body: dict[str, Any]) -> None:
    post(client, json.dumps(body, allow_nan=False).encode())


@FUZZ
@given(drivers=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False)),
                        min_size=1, max_size=5),
       riders=st.lists(st.text(max_size=8), min_size=1, max_size=5))
def test_valid_shapes_with_any_key_values(client: TestClient, drivers: list[Any], riders: list[str]) -> None:
    """Well-formed bodies: 200 unless a key value cannot be the key's type, then one sentence naming the row."""
    riders = (riders * 5)[: len(drivers)]
    response = post(client, json.dumps({"features": ["stats:trips", "pairs:rating"],
                                        "entities": {"driver_id": drivers, "rider_id": riders}}).encode())
    exact = all(isinstance(d, int) or (d.is_integer() and -(2**63) <= d < 2**63) for d in drivers)
    if exact:
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["values"] == [int(d) for d in drivers]
    else:
        assert response.status_code == 400
        assert "join key 'driver_id' of entity 'driver'" in response.json()["error"]


def test_the_server_still_answers_afterwards(client: TestClient) -> None:
    # runs after the fuzzing above (pytest keeps file order): the app is alive and reads correctly
    assert client.get("/health").status_code == 200
    response = post(client, json.dumps({"features": ["stats:trips"], "entities": {"driver_id": [1, 99]}}).encode())
    assert response.status_code == 200
    assert response.json()["results"][1]["statuses"][1] == "NOT_FOUND"
