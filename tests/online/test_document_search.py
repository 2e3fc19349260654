"""retrieve_online_documents end to end: specs -> dbt build -> featurehouse sync -> search.

One DuckDB repo with a `docs` view (a cosine index over 4 dimensions, ttl 3d) is built and
synced to SQLite once; the SDK, the HTTP server and the CLI are asked the same questions,
each answer checked against the numpy reference (tests/support/vectors.py), and every
hostile request is one sentence (RequestError, HTTP 400, CLI exit 1).
"""

from __future__ import annotations

import json
import random
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.online import rebuild, redis_store, set_store, unique
from support.vectors import Doc, assert_matches_reference, doc_rows, now_utc, write_doc_repo

from featurehouse import FeatureStore
from featurehouse.cli.app import main
from featurehouse.errors import OnlineStoreError, RequestError
from featurehouse.sync import sync

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient

NOW = now_utc()
FEATURES = ["docs:title", "docs:lang", "docs:embedding"]


def corpus() -> dict[int, Doc]:
    rng = random.Random(5)
    docs = {}
    for key in range(1, 61):
        vector = [float(rng.randint(-3, 3)) for _ in range(4)]
        if key % 13 == 0:
            vector = [0.0, 0.0, 0.0, 0.0]  # no direction: never returned by cosine
        age = 5.0 if key % 7 == 0 else rng.uniform(0, 2.5)  # every seventh expired (ttl 3d)
        docs[key] = Doc(key, NOW.replace(microsecond=0) - timedelta(days=age),
                        f"title {key}", "pt" if key % 3 == 0 else "en", vector if key % 11 else None)
    return docs


DOCS = corpus()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = write_doc_repo(tmp_path_factory.mktemp("docs"), doc_rows(DOCS))
    rebuild(root)
    sync(FeatureStore(root))
    return root


@pytest.fixture(scope="module")
def store(repo: Path) -> FeatureStore:
    return FeatureStore(repo)


def test_the_sdk_answers_feasts_shape_best_first(store: FeatureStore) -> None:
    query = [1.0, 0.5, -1.0, 2.0]
    result = store.retrieve_online_documents(FEATURES, query, top_k=5).to_dict()
    assert list(result) == ["doc_id", "title", "lang", "embedding", "distance"]
    hits = list(zip(result["doc_id"], result["distance"]))
    assert_matches_reference(hits, DOCS, query, "cosine", 5, not_before=NOW - timedelta(days=3))
    for key, title, lang, vector in zip(result["doc_id"], result["title"], result["lang"], result["embedding"]):
        assert (title, lang, vector) == (DOCS[key].title, DOCS[key].lang, DOCS[key].vector)
    frame = store.retrieve_online_documents(["docs:title"], np.asarray(query), top_k=5).to_df()
    assert list(frame.columns) == ["doc_id", "title", "distance"] and list(frame["doc_id"]) == result["doc_id"]


@pytest.mark.parametrize("seed", range(8))
def test_random_queries_and_filters_equal_the_reference(store: FeatureStore, seed: int) -> None:
    rng = random.Random(seed)
    query = [float(rng.randint(-3, 3)) for _ in range(4)]
    if not any(query):
        query[0] = 1.0
    top_k = rng.choice([1, 3, 10, 100])
    where = rng.choice([None, {"lang": "pt"}, {"lang": "en", "title": "title 2"}])
    result = store.retrieve_online_documents(["docs:title"], query, top_k=top_k, where=where).to_dict()
    assert_matches_reference(list(zip(result["doc_id"], result["distance"])), DOCS, query, "cosine", top_k, where,
                             NOW - timedelta(days=3), context=f"seed {seed}")


def test_distance_metric_may_be_given_when_it_is_the_index_metric(store: FeatureStore) -> None:
    a = store.retrieve_online_documents(["docs:title"], [1, 0, 0, 0], top_k=3, distance_metric="cosine").to_dict()
    assert a == store.retrieve_online_documents(["docs:title"], [1, 0, 0, 0], top_k=3).to_dict()


HOSTILE = [
    (dict(query=[1, 2, 3]), "query has 3 numbers, but the vector feature 'docs:embedding' has 4 dimensions"),
    (dict(query=[1, float("nan"), 0, 0]), "query[1] is nan; a query must hold finite float32 numbers"),
    (dict(query=[1, 1e39, 0, 0]), "query[1] is 1e+39; a query must hold finite float32 numbers"),
    (dict(query=[0, 0, 0, 0]), "query is all zeros, which has no direction for the cosine distance"),
    (dict(query="1,2,3,4"), "query must be a list of 4 numbers, got '1,2,3,4'"),
    (dict(query=[1, "a", 0, 0]), "query must be a list of numbers, but it holds 'a'"),
    (dict(query=[[1, 2], [3, 4]]), "query must be one flat list of numbers"),
    (dict(top_k=0), "top_k must be a whole number from 1 to 1000, got 0"),
    (dict(top_k=1001), "top_k must be a whole number from 1 to 1000, got 1001"),
    (dict(top_k=True), "top_k must be a whole number from 1 to 1000, got True"),
    (dict(distance_metric="l2"), "distance_metric is l2, but the vector index of 'docs:embedding' ranks by cosine"),
    (dict(distance_metric="cosin"), "distance_metric must be one of cosine, l2, inner_product, got 'cosin' "
                                    "(did you mean 'cosine'?)"),
    (dict(where={"lang": None}), "where.lang is null"),
    (dict(where={"lnag": "en"}), "where names unknown feature 'lnag' of feature view 'docs' (did you mean 'lang'?)"),
    (dict(where={"embedding": [1]}), "where can filter on scalar features only; 'embedding' is array<float32>"),
    (dict(where={"lang": 3}), "where.lang must be a string value, got 3"),
    (dict(where="lang=en"), "where must be a mapping of feature to value"),
    (dict(features=["docs:title", "plain:title"]), "a document search reads one feature view"),
    (dict(features=["plain:title"]), "feature view 'plain' has no vector feature to search"),
    (dict(features=["docs:titel"]), "did you mean 'title'?"),
    (dict(features="docs:title"), "features must be a non-empty list"),
    (dict(exact="yes"), "exact must be true or false"),
]


@pytest.mark.parametrize(("change", "message"), HOSTILE, ids=[m[:40] for _, m in HOSTILE])
def test_each_hostile_request_is_one_sentence(store: FeatureStore, change: dict, message: str) -> None:
    args = {"features": ["docs:title"], "query": [1, 0, 0, 0], "top_k": 3, **change}
    with pytest.raises(RequestError) as error:
        store.retrieve_online_documents(**args)
    assert message in str(error.value) and "\n" not in str(error.value)


# ---- HTTP --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(repo: Path):
    from featurehouse.server import create_app

    with TestClient(create_app(repo), raise_server_exceptions=False) as test_client:
        yield test_client


def test_http_takes_feasts_body_and_answers_feasts_shape(client, store: FeatureStore) -> None:
    body = {"features": ["docs:title", "docs:lang"], "query": [1, 2, 0, -1], "top_k": 4, "api_version": 2,
            "full_feature_names": False, "feature_service": None, "query_string": None}
    response = client.post("/retrieve-online-documents", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["metadata"]["feature_names"] == ["doc_id", "title", "lang", "distance"]
    expected = store.retrieve_online_documents(["docs:title", "docs:lang"], [1, 2, 0, -1], top_k=4).to_dict()
    columns = dict(zip(answer["metadata"]["feature_names"], (r["values"] for r in answer["results"])))
    assert columns == expected
    assert all(r["statuses"] == ["PRESENT"] * 4 and len(r["event_timestamps"]) == 4 for r in answer["results"])


def test_http_filters_and_full_feature_names(client) -> None:
    body = {"features": ["docs:lang"], "query": [1, 1, 1, 1], "top_k": 50, "where": {"lang": "pt"},
            "full_feature_names": True}
    answer = client.post("/retrieve-online-documents", json=body).json()
    names = answer["metadata"]["feature_names"]
    assert names == ["doc_id", "docs__lang", "distance"]
    assert set(answer["results"][1]["values"]) == {"pt"}


@pytest.mark.parametrize(("body", "message"), [
    ({"features": ["docs:title"], "query": [1, 2], "top_k": 3}, "query has 2 numbers"),
    ({"features": ["docs:title"], "top_k": 3}, "query is missing"),
    ({"features": ["docs:title"], "query": [1, 0, 0, 0], "top_k": "3"}, "top_k must be a whole number"),
    ({"features": ["docs:title"], "query": [1, 0, 0, 0], "query_string": "cats"}, "query_string (text search)"),
    ({"features": ["docs:title"], "query": [1, 0, 0, 0], "topk": 3}, "unknown field 'topk' in the request body "
                                                                     "(did you mean 'top_k'?)"),
    ([1, 2], "the request body must be a JSON object"),
])
def test_http_errors_are_400_with_one_sentence(client, body, message) -> None:
    response = client.post("/retrieve-online-documents", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_http_invalid_json_is_400(client) -> None:
    response = client.post("/retrieve-online-documents", content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


# ---- CLI ---------------------------------------------------------------------------------------------------
def test_cli_prints_the_documents_as_json(repo: Path, store: FeatureStore) -> None:
    result = CliRunner().invoke(main, ["--repo", str(repo), "retrieve-online-documents", "-f", "docs:title",
                                       "-f", "docs:lang", "--query", "[1, 2, 0, -1]", "--top-k", "4",
                                       "--where", "lang=en"])
    assert result.exit_code == 0, result.output
    expected = store.retrieve_online_documents(["docs:title", "docs:lang"], [1, 2, 0, -1], top_k=4,
                                               where={"lang": "en"}).to_dict()
    assert json.loads(result.output) == expected


def test_cli_error_is_one_line_and_exit_1(repo: Path) -> None:
    result = CliRunner().invoke(main, ["--repo", str(repo), "retrieve-online-documents", "-f", "docs:title",
                                       "--query", "1,2"])
    assert result.exit_code == 1
    assert "query has 2 numbers, but the vector feature 'docs:embedding' has 4 dimensions" in result.output
    assert "Traceback" not in result.output


# ---- Redis -------------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_redis_says_which_stores_search(repo: Path, redis_url: str, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    set_store(copy, redis_store(redis_url, unique("h1vec")))
    store = FeatureStore(copy)
    with pytest.raises(OnlineStoreError) as error:
        store.retrieve_online_documents(["docs:title"], [1, 0, 0, 0])
    assert str(error.value).startswith("vector search is supported on the sqlite and postgres online stores; "
                                       "redis has no vector search")
    from featurehouse.server import create_app

    with TestClient(create_app(copy), raise_server_exceptions=False) as client:
        response = client.post("/retrieve-online-documents", json={"features": ["docs:title"], "query": [1, 0, 0, 0]})
    assert response.status_code == 400 and "sqlite and postgres" in response.json()["error"]
