"""The HTTP feature server: Feast's contract, every bad request, the catalog endpoints, a real process.

One example repo for the module: the example specs and data, `dbt build`, `featurehouse sync`
to SQLite (~20 s). The load benchmark is bench/bench_server.py.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.cli.example import write_example_data
from featurehouse.server import create_app
from support.repos import PACKAGE_ROOT, run_dbt, write_repo

with warnings.catch_warnings():  # starlette nags about its httpx-based client; it is the documented one
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

# the installed console script, as a user runs it
FEATUREHOUSE = str(Path(sys.executable).with_name("featurehouse"))
FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]


def cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--repo", str(root), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_repo(tmp_path_factory.mktemp("server") / "repo", {})
    for spec in (PACKAGE_ROOT / "feature_specs").glob("*.yml"):
        shutil.copy(spec, root / "feature_specs" / spec.name)
    shutil.copytree(PACKAGE_ROOT / "models" / "example", root / "models" / "example")  # documents.yml reads it
    write_example_data(root / "seeds")
    cli(root, "compile")
    run_dbt(root, "build")
    cli(root, "sync")
    return root


@pytest.fixture(scope="module")
def client(repo: Path) -> TestClient:
    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        yield test_client


def latest_driver_row(repo: Path, driver_id: int) -> dict[str, str]:
    """The row the point-in-time rule picks now, straight from the seed CSV."""
    with open(repo / "seeds" / "raw_driver_stats.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["driver_id"]) == driver_id]
    return max(rows, key=lambda r: (r["event_timestamp"], r["created"]))


# ---- the Feast contract -----------------------------------------------------------------------------
def test_feast_request_gets_feast_column_major_response(client: TestClient, repo: Path) -> None:
    # the body a Feast HTTP client sends, byte for byte in shape
    body = {"features": FEATURES, "entities": {"driver_id": [1001, 1002, 9999]}, "full_feature_names": False}
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["metadata"] == {"feature_names": ["driver_id", "conv_rate", "acc_rate", "avg_daily_trips"]}
    assert len(data["results"]) == 4
    for column in data["results"]:
        assert set(column) == {"values", "statuses", "event_timestamps"}
        assert len(column["values"]) == len(column["statuses"]) == len(column["event_timestamps"]) == 3
    keys, conv_rate, acc_rate, trips = data["results"]
    assert keys["values"] == [1001, 1002, 9999]
    assert conv_rate["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert conv_rate["values"][2] is None and trips["values"][2] is None
    expected = latest_driver_row(repo, 1001)
    assert conv_rate["values"][0] == pytest.approx(float(expected["conv_rate"]), rel=1e-6)
    assert acc_rate["values"][0] == pytest.approx(float(expected["acc_rate"]), rel=1e-6)
    assert trips["values"][0] == int(expected["avg_daily_trips"])
    assert conv_rate["event_timestamps"][0] == expected["event_timestamp"].replace(" ", "T") + "Z"


def test_feature_service_and_full_feature_names(client: TestClient) -> None:
    body = {"feature_service": "driver_activity", "entities": {"driver_id": [1001], "customer_id": [2001]},
            "full_feature_names": True}
    data = client.post("/get-online-features", json=body).json()
    assert data["metadata"]["feature_names"] == [
        "driver_id", "customer_id",
        "driver_hourly_stats__conv_rate", "driver_hourly_stats__acc_rate", "driver_hourly_stats__avg_daily_trips",
        "customer_profile__current_balance", "customer_profile__avg_passenger_count",
        "customer_profile__lifetime_trip_count",
    ]
    assert all(r["statuses"] == ["PRESENT"] for r in data["results"])


def test_server_answers_what_the_sdk_answers(client: TestClient, repo: Path) -> None:
    from featurehouse import FeatureStore

    rows = {"driver_id": [1003, 1001, 1003, 4242]}
    http = client.post("/get-online-features", json={"features": FEATURES, "entities": rows}).json()
    sdk = FeatureStore(repo).get_online_features(FEATURES, [{"driver_id": d} for d in rows["driver_id"]])
    assert http == json.loads(json.dumps(sdk.to_feast_json()))


def test_the_fastapi_route_answers_the_same(client: TestClient) -> None:
    # FeatureServer answers the hot path itself; the FastAPI route behind it documents it and agrees
    body = {"features": FEATURES, "entities": {"driver_id": [1001, 9999]}}
    api = TestClient(client.app.api, raise_server_exceptions=False)
    assert api.post("/get-online-features", json=body).json() == client.post("/get-online-features", json=body).json()
    assert api.post("/get-online-features", content=b"{").status_code == 400
    assert api.get("/health").json() == client.get("/health").json()


# ---- bad requests: 4xx with one sentence, never a 500 or a traceback ---------------------------------------
BAD_REQUESTS = [
    (b"", "the request body is empty"),
    (b"   ", "the request body is empty"),
    (b'{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]', "not valid JSON"),
    (b"[1, 2]", "the request body must be a JSON object, got a list"),
    ({"features": ["driver_hourly_stats:conv_rat"], "entities": {"driver_id": [1001]}},
     "feature view 'driver_hourly_stats' has no feature 'conv_rat' (did you mean 'conv_rate'?)"),
    ({"features": ["driver_hourly_stat:conv_rate"], "entities": {"driver_id": [1001]}},
     "unknown feature view 'driver_hourly_stat' in 'driver_hourly_stat:conv_rate' (did you mean 'driver_hourly_stats'?)"),
    ({"feature_service": "driver_activty", "entities": {"driver_id": [1001]}},
     "unknown feature service 'driver_activty' (did you mean 'driver_activity'?)"),
    ({"features": FEATURES, "entities": {"customer_id": [2001]}}, "no 'driver_id'"),
    ({"features": FEATURES, "entities": {"driverid": [1001]}},
     "the entities have no 'driver_id', a join key of the requested features (did you mean 'driverid'?)"),
    ({"features": FEATURES, "entities": {"driver_id": ["1001x"]}}, "must be an integer"),
    ({"features": FEATURES, "entities": {"driver_id": [1001.5]}}, "must be an integer"),
    ({"features": FEATURES, "entities": {"driver_id": [True]}}, "must be an integer"),
    ({"feature_service": "driver_activity", "entities": {"driver_id": [1001, 1002], "customer_id": [2001]}},
     "entities lists differ in length: driver_id has 2 value(s), customer_id has 1"),
    ({"features": FEATURES, "entities": {"driver_id": []}}, "entities lists are empty"),
    ({"features": FEATURES, "entities": {"driver_id": 1001}}, "entities.driver_id must be a list of values"),
    ({"features": FEATURES, "entities": {}}, "entities must be a non-empty object"),
    ({"features": FEATURES}, "the request has no entities"),
    ({"entities": {"driver_id": [1001]}}, "the request names no features"),
    ({"features": [], "entities": {"driver_id": [1001]}}, "features is an empty list"),
    ({"features": "driver_hourly_stats:conv_rate", "entities": {"driver_id": [1001]}},
     "features must be a list of 'view:feature' strings, got a string"),
    ({"features": [1], "entities": {"driver_id": [1001]}}, "features must hold 'view:feature' strings"),
    ({"features": FEATURES, "feature_service": "driver_activity", "entities": {"driver_id": [1001]}},
     "name either features or feature_service, not both"),
    ({"features": ["driver_activity"], "entities": {"driver_id": [1001]}},
     "'driver_activity' is a feature service, not a feature view: send \"feature_service\": \"driver_activity\""),
    ({"features": FEATURES, "entites": {"driver_id": [1001]}},
     "the request has no entities: add \"entities\": {\"<join key>\": [values, ...]} (is 'entites' a typo of 'entities'?)"),
    ({"features": FEATURES, "entities": {"driver_id": [2**63]}}, "is int64, and 9223372036854775808 is outside its range"),
    ({"features": FEATURES, "entities": {"driver_id": [1001]}, "full_feature_names": "yes"},
     "full_feature_names must be true or false"),
    ({"features": ["driver_hourly_stats:conv_rate", "customer_profile:avg_passenger_count",
                   "driver_hourly_stats"], "entities": {"driver_id": [1], "customer_id": [2]}}, None),
    ({"features": FEATURES, "entities": {"driver_id": list(range(10_001))}}, "the limit is 10000"),
]


@pytest.mark.parametrize("body,message", BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
def test_bad_requests_get_a_4xx_with_one_sentence(client: TestClient, body: Any, message: str | None) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/get-online-features", content=content, headers={"content-type": "application/json"})
    if message is None:  # the control: a valid request mixing views
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert list(error) == ["error"]
    assert message in error["error"]
    assert "Traceback" not in response.text and "\n" not in error["error"]


def test_unknown_endpoints_and_methods_answer_json(client: TestClient) -> None:
    response = client.get("/get-online-feature")
    assert (response.status_code, response.json()) == (404, {"error": "no such endpoint"})
    response = client.get("/get-online-features")
    assert response.status_code == 405 and "method not allowed" in response.json()["error"]


def test_a_huge_body_is_a_413(client: TestClient) -> None:
    response = client.post("/get-online-features", content=b" " * (8 * 1024 * 1024 + 1))
    assert response.status_code == 413 and "larger than" in response.json()["error"]


def test_an_unexpected_failure_is_a_500_without_traceback(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from featurehouse.online.reader import OnlineReader

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(OnlineReader, "read", broken)
    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        response = test_client.post("/get-online-features", json={"features": FEATURES, "entities": {"driver_id": [1]}})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); the server log has the details"}


def test_an_unreachable_online_store_is_a_503(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = write_repo(tmp_path / "repo", {"specs.yml": (PACKAGE_ROOT / "feature_specs" / "drivers.yml").read_text()},
                      online_store=f"  type: postgres\n  url: postgresql://postgres@127.0.0.1:{port}/test\n")
    with TestClient(create_app(root), raise_server_exceptions=False) as down:
        response = down.post("/get-online-features", json={"features": FEATURES, "entities": {"driver_id": [1]}})
        assert response.status_code == 503, response.text
        # the client learns which store failed, never where it is: the log has that
        assert response.json() == {"error": "the postgres online store cannot be read; the server log has the details"}
        assert down.get("/health").status_code == 200  # the worker itself is alive


# ---- the catalog endpoints -----------------------------------------------------------------------------
def test_health_and_catalog_endpoints(client: TestClient, repo: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "project": "test_repo", "online_store": "sqlite"}
    views = client.get("/feature-views").json()["feature_views"]
    from featurehouse.spec.repo import load_repo

    assert [v["name"] for v in views] == sorted(load_repo(repo).feature_views)
    assert {"customer_profile", "driver_hourly_stats"} <= {v["name"] for v in views}
    view = client.get("/feature-views/driver_hourly_stats").json()
    assert [(f["name"], f["dtype"]) for f in view["features"]][:2] == [("conv_rate", "float32"), ("acc_rate", "float32")]
    assert view["ttl"] == "1d" and view["owner"] == "ml-platform@example.com"
    assert view["feature_services"] == [
        {"name": "driver_activity", "features": ["conv_rate", "acc_rate", "avg_daily_trips"]}]
    assert view["online_store"]["type"] == "sqlite" and view["online_store"]["rows"] == 9  # 1010 is past its ttl
    assert view["online_store"]["last_sync"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    missing = client.get("/feature-views/driver_hourly")
    assert missing.status_code == 404
    assert missing.json() == {"error": "unknown feature view 'driver_hourly' (did you mean 'driver_hourly_stats'?)"}
    services = client.get("/feature-services").json()["feature_services"]
    assert [(s["name"], len(s["features"])) for s in services] == [("driver_activity", 6)]
    assert client.get("/feature-services/driver_activity").json()["training_sets"] == ["driver_training"]
    assert client.get("/feature-services/nope").status_code == 404
    assert [e["name"] for e in client.get("/entities").json()["entities"]] == ["customer", "document", "driver"]


def test_openapi_documents_the_feast_body(repo: Path) -> None:
    from featurehouse.server import ServerSettings

    with TestClient(create_app(repo, settings=ServerSettings(docs=True))) as client:  # `serve --docs`
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs").status_code
    post = spec["paths"]["/get-online-features"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"features", "feature_service", "entities", "full_feature_names",
                                       "include_feature_view_version_metadata"}
    assert set(post["responses"]) >= {"200", "400", "503"}
    assert {"/health", "/ready", "/feature-views", "/feature-views/{name}", "/feature-services"} <= set(spec["paths"])
    assert docs == 200


def test_describe_shows_the_last_sync(repo: Path) -> None:
    out = cli(repo, "describe", "driver_hourly_stats")
    line = next(x for x in out.splitlines() if x.strip().startswith("online store:"))
    assert line.split(":", 1)[1].strip().startswith("sqlite: last sync ") and line.endswith(", 9 rows")


# ---- a real `featurehouse serve` -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`featurehouse serve` in a subprocess, stopped (SIGINT, then kill) on exit."""

    def __init__(self, repo: Path, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [FEATUREHOUSE, "--repo", str(repo), "serve",
                   "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read().decode()
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("featurehouse serve did not answer /health within 30 s")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def test_featurehouse_serve_process(repo: Path, client: TestClient) -> None:
    body = {"features": FEATURES, "entities": {"driver_id": [1001, 1005]}}
    with Server(repo, workers=2) as server, httpx.Client(base_url=server.url) as http:
        response = http.post("/get-online-features", json=body)
        assert response.status_code == 200
        assert response.json() == client.post("/get-online-features", json=body).json()
        bad = http.post("/get-online-features", content=b"{nope")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    assert server.process.returncode == 0, server.process.stdout.read().decode()


HAMMER = """
import json, sys, httpx
url, stop, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import os
answered, failures = 0, []
with httpx.Client(base_url=url, timeout=10) as http:
    while not os.path.exists(stop):
        response = http.post("/get-online-features", json=body)
        statuses = response.json()["results"][1]["statuses"] if response.status_code == 200 else None
        if statuses != ["PRESENT"] * len(body["entities"]["driver_id"]):
            failures.append(f"{response.status_code} {response.text[:200]}")
        answered += 1
        if answered == 1:
            print("ready", flush=True)
print(json.dumps({"answered": answered, "failures": failures[:5]}), flush=True)
"""


def test_serve_keeps_answering_while_sync_writes(repo: Path, tmp_path: Path) -> None:
    body = {"features": FEATURES, "entities": {"driver_id": [1001, 1002, 1003]}}
    stop = tmp_path / "stop"
    with Server(repo) as server:
        # load from another process, so that the sync here cannot starve it of the GIL
        hammer = subprocess.Popen([sys.executable, "-c", HAMMER, server.url, str(stop), json.dumps(body)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert hammer.stdout.readline().strip() == "ready"
            # in this process (it holds the DuckDB file since dbt ran here); the server is another one
            for _ in range(3):  # a full refresh rebuilds every view under the readers
                assert "driver_hourly_stats (full refresh)" in cli(repo, "sync", "--full-refresh")
        finally:
            stop.touch()
            output, _ = hammer.communicate(timeout=30)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["failures"] == []
    assert result["answered"] > 20


def test_serve_errors() -> None:
    result = CliRunner().invoke(main, ["--repo", "/nonexistent/repo", "serve"])
    assert result.exit_code == 1 and "no featurehouse.yml found" in result.output
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "70000 is not in the range" in result.output
    result = CliRunner().invoke(main, ["serve", "--workers", "0"])
    assert result.exit_code == 2
