"""Offline point-in-time retrieval (``get_historical_documents``) against a brute-force reference.

Property tests draw document histories full of edge cases (updates, deletions as NULL
vectors, zero vectors, full ties, rows exactly ttl old, backfills for the
filter_by_created view) and spines (duplicate rows, NULL times and queries, zoned times),
and compare the SDK's hits with tests/support/retrieval.py's reference, on DuckDB, on
Postgres without pgvector (the portable SQL) and on Postgres with pgvector. Example tests
spell each rule out with a hand-computed answer.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.reference import CREATED, EVENT
from support.retrieval import BASE, DIMS, VIEWS, check, reference

from featurehouse.errors import RequestError

pytest_plugins = ["support.retrieval"]

MICROSECOND = dt.timedelta(microseconds=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
GRID = [BASE + k * 30 * MINUTE for k in range(7)]
ZONES = [None, "UTC", "Europe/Paris", "America/New_York"]

instants = (
    st.sampled_from(GRID)
    | st.sampled_from([t - MICROSECOND for t in GRID])
    | st.sampled_from([t + MICROSECOND for t in GRID])
)
# small integers: dot products are exact, and equal vectors give bit-equal distances (ties)
components = st.integers(-2, 2).map(float)
vectors = st.lists(components, min_size=DIMS, max_size=DIMS)
document_vectors = st.none() | st.just([0.0] * DIMS) | vectors | st.sampled_from([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])


@st.composite
def documents(draw) -> list[dict]:
    rows: list[dict] = []
    for _ in range(draw(st.integers(0, 10))):
        if rows and draw(st.booleans()) and draw(st.booleans()):  # a full tie with an earlier row
            row = dict(draw(st.sampled_from(rows)))
        else:
            event = draw(instants)
            row = {
                "doc_id": draw(st.integers(1, 5)),
                EVENT: event,
                CREATED: draw(st.none() | st.sampled_from([event, event + 30 * MINUTE, event - HOUR]) | instants),
            }
        row["title"] = draw(st.none() | st.sampled_from(["a", "B", "b", "é"]))
        row["embedding"] = draw(document_vectors)
        rows.append(row)
    return rows


@st.composite
def spines(draw, metric: str) -> list[dict]:
    queries = vectors.filter(any) if metric == "cosine" else vectors
    spine: list[dict] = []
    for i in range(draw(st.integers(1, 6))):
        if spine and draw(st.integers(0, 5)) == 0:
            spine.append(dict(spine[-1], __spine=i))
            continue
        spine.append({"__spine": i, EVENT: draw(st.none() | instants), "query": draw(st.none() | queries)})
    return spine


def entity_df(spine: list[dict], zone: str | None) -> pa.Table:
    from zoneinfo import ZoneInfo

    times = [
        None
        if r[EVENT] is None or zone is None
        else r[EVENT].replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(zone))
        for r in spine
    ]
    if zone is None:
        times = [r[EVENT] for r in spine]
    return pa.table(
        {
            "__spine": pa.array([r["__spine"] for r in spine], pa.int64()),
            EVENT: pa.array(times, pa.timestamp("us", tz=zone)),
            "query": pa.array([r["query"] for r in spine], pa.list_(pa.float32())),
        }
    )


def run_property(harness, view: str, rows: list[dict], spine: list[dict], zone: str | None, top_k: int) -> None:
    harness.load(rows)
    table = entity_df(spine, zone)
    result = (
        harness.store().get_historical_documents(table, [f"{view}:title", f"{view}:embedding"], top_k=top_k).to_arrow()
    )
    assert result.column_names == ["__spine", EVENT, "query", "rank", "doc_id", "title", "embedding", "distance"]
    check(result, spine, reference(view, rows, spine, top_k))


@st.composite
def cases(draw):
    view = draw(st.sampled_from(sorted(VIEWS)))
    return view, draw(documents()), draw(spines(VIEWS[view][0])), draw(st.sampled_from(ZONES)), draw(st.integers(1, 7))


def property_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@property_settings(80)
@given(case=cases())
def test_retrieval_matches_reference_duckdb(duckdb_retrieval, case):
    run_property(duckdb_retrieval, *case)


@pytest.mark.postgres
@property_settings(40)
@given(case=cases())
def test_retrieval_matches_reference_postgres_portable(postgres_retrieval, case):
    """The shared Postgres has no pgvector: the macro's portable SQL (unnest, sum)."""
    run_property(postgres_retrieval, *case)


@pytest.mark.postgres
@property_settings(30)
@given(case=cases())
def test_retrieval_matches_reference_pgvector(pgvector_retrieval, case):
    """A Postgres with pgvector: its distance operators."""
    run_property(pgvector_retrieval, *case)


# ---- the rules, one example each ------------------------------------------------------------
def doc(
    doc_id: int, event: dt.datetime, embedding, title: str | None = "t", created: dt.datetime | None = None
) -> dict:
    return {"doc_id": doc_id, EVENT: event, CREATED: created, "title": title, "embedding": embedding}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def harness(request):
    return request.getfixturevalue(f"{request.param}_retrieval")


def search(harness, view: str, t: dt.datetime | None, query: list[float] | None, top_k: int = 10) -> list[tuple]:
    """The hits of one spine row as (doc_id, title, distance rounded)."""
    table = pa.table({EVENT: pa.array([t], pa.timestamp("us")), "query": pa.array([query], pa.list_(pa.float32()))})
    result = harness.store().get_historical_documents(table, [f"{view}:title"], top_k=top_k).to_arrow()
    rows = result.to_pylist()
    if len(rows) == 1 and rows[0]["rank"] is None:
        return []
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    return [(r["doc_id"], r["title"], round(r["distance"], 5)) for r in rows]


def test_latest_version_at_or_before_t_and_deletions(harness):
    harness.load(
        [
            doc(1, BASE, [1.0, 0.0, 0.0], "v1"),
            doc(1, BASE + HOUR, [0.0, 1.0, 0.0], "v2"),  # updated: another direction
            doc(2, BASE, [1.0, 1.0, 0.0], "kept"),
            doc(3, BASE, [1.0, 0.0, 0.0], "deleted later"),
            doc(3, BASE + 30 * MINUTE, None, "deleted"),  # a NULL vector deletes the document
        ]
    )
    before = search(harness, "docs_l2", BASE + 20 * MINUTE, [1.0, 0.0, 0.0])
    assert before == [(1, "v1", 0.0), (3, "deleted later", 0.0), (2, "kept", 1.0)]
    # the row exactly at t counts: at BASE + 1h document 1 is its second version
    after = search(harness, "docs_l2", BASE + HOUR, [1.0, 0.0, 0.0])
    assert after == [(2, "kept", 1.0), (1, "v2", round(2**0.5, 5))]
    assert search(harness, "docs_l2", BASE - MICROSECOND, [1.0, 0.0, 0.0]) == []


def test_ttl_row_exactly_ttl_old_counts(harness):
    harness.load([doc(1, BASE, [1.0, 0.0, 0.0], "old"), doc(2, BASE + 30 * MINUTE, [0.0, 1.0, 0.0], "new")])
    # docs_cos has ttl 1h
    assert [h[0] for h in search(harness, "docs_cos", BASE + HOUR, [1.0, 0.0, 0.0])] == [1, 2]
    assert [h[0] for h in search(harness, "docs_cos", BASE + HOUR + MICROSECOND, [1.0, 0.0, 0.0])] == [2]


def test_distance_ties_go_to_the_smaller_key_and_top_k_cuts(harness):
    harness.load([doc(k, BASE, [1.0, 2.0, 2.0], f"d{k}") for k in (5, 3, 4, 1, 2)])
    got = search(harness, "docs_ip", BASE, [1.0, 0.0, 0.0], top_k=3)
    assert got == [(1, "d1", -1.0), (2, "d2", -1.0), (3, "d3", -1.0)]


def test_top_k_larger_than_the_corpus(harness):
    harness.load([doc(1, BASE, [1.0, 0.0, 0.0]), doc(2, BASE, [0.0, 1.0, 0.0])])
    assert [h[0] for h in search(harness, "docs_l2", BASE, [1.0, 0.0, 0.0], top_k=1000)] == [1, 2]


def test_zero_vectors_with_cosine(harness):
    harness.load([doc(1, BASE, [0.0, 0.0, 0.0], "zero"), doc(2, BASE, [0.0, 3.0, 0.0], "y")])
    # a zero document has no direction: never returned by a cosine search ...
    assert search(harness, "docs_cos", BASE, [1.0, 1.0, 0.0]) == [(2, "y", round(1 - 2**-0.5, 5))]
    # ... but is a document like any other for l2
    assert [h[0] for h in search(harness, "docs_l2", BASE, [1.0, 1.0, 0.0])] == [1, 2]
    # a zero query is refused with cosine
    with pytest.raises(RequestError, match="all zeros"):
        search(harness, "docs_cos", BASE, [0.0, 0.0, 0.0])


def test_full_tie_takes_the_greatest_feature_tuple(harness):
    harness.load([doc(1, BASE, [1.0, 0.0, 0.0], "a"), doc(1, BASE, [0.0, 1.0, 0.0], "b")])
    assert search(harness, "docs_l2", BASE, [1.0, 0.0, 0.0]) == [(1, "b", round(2**0.5, 5))]


def test_filter_by_created_hides_a_backfill_until_it_exists(harness):
    harness.load(
        [
            doc(1, BASE, [1.0, 0.0, 0.0], "first", created=BASE),
            doc(1, BASE + 10 * MINUTE, [0.0, 1.0, 0.0], "backfilled", created=BASE + HOUR),
        ]
    )
    assert search(harness, "docs_fc", BASE + 30 * MINUTE, [1.0, 0.0, 0.0])[0][1] == "first"
    assert search(harness, "docs_fc", BASE + HOUR, [1.0, 0.0, 0.0])[0][1] == "backfilled"


def test_one_row_per_hit_keeps_every_spine_row_and_its_columns(harness):
    harness.load([doc(1, BASE, [1.0, 0.0, 0.0], "a"), doc(2, BASE, [0.0, 1.0, 0.0], "b")])
    frame = pd.DataFrame(
        {
            "question": ["q0", "q1", "q2", "q0"],
            EVENT: pd.to_datetime([BASE, BASE - HOUR, BASE, BASE]).tz_localize("UTC").tz_convert("Europe/Paris"),
            "query": [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], None, [1.0, 0.0, 0.0]],
        },
        index=[10, 11, 12, 13],
    )
    out = harness.store().get_historical_documents(frame, ["docs_l2:title"], top_k=2).to_df()
    assert list(out.columns) == ["question", EVENT, "query", "rank", "doc_id", "title", "distance"]
    assert list(out.index) == [10, 10, 11, 12, 13, 13]  # a duplicate spine row gets its own hits
    assert out["question"].tolist() == ["q0", "q0", "q1", "q2", "q0", "q0"]
    assert out["rank"].tolist()[:2] == [1, 2] and pd.isna(out["rank"].iloc[2]) and pd.isna(out["rank"].iloc[3])
    assert out["doc_id"].tolist()[:2] == [1, 2]
    assert str(out[EVENT].dt.tz) == "Europe/Paris"


# ---- hostile requests -------------------------------------------------------------------------
def _one(query, t=BASE, column="query"):
    return pa.table({EVENT: pa.array([t], pa.timestamp("us")), column: pa.array([query], pa.list_(pa.float32()))})


@pytest.mark.parametrize(
    ("kwargs", "table", "message"),
    [
        ({"top_k": 0}, _one([1.0, 0.0, 0.0]), "top_k must be a whole number from 1 to 1000"),
        ({"top_k": 1001}, _one([1.0, 0.0, 0.0]), "top_k must be a whole number from 1 to 1000"),
        ({}, _one([1.0, 0.0]), "has 2 values; feature 'docs_l2:embedding' has 3 dimensions"),
        ({}, _one([1.0, float("nan"), 0.0]), "NaN or infinity"),
        ({}, _one([1.0, 0.0, 0.0], column="q"), "no column 'query'"),
        ({"query_column": "q"}, pa.table({EVENT: [BASE], "q": ["text"]}), "must hold query vectors"),
        (
            {},
            pa.table({EVENT: [BASE], "query": pa.array([[1.0, 0.0, 0.0]]), "rank": [1]}),
            "already has a column 'rank'",
        ),
    ],
)
def test_bad_requests_are_one_sentence(duckdb_retrieval, kwargs, table, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        duckdb_retrieval.store().get_historical_documents(table, ["docs_l2:title"], **kwargs).to_arrow()


def test_only_vector_views_can_be_searched(duckdb_retrieval, tmp_path):
    store = duckdb_retrieval.store()
    with pytest.raises(RequestError, match="one feature view at a time"):
        store.get_historical_documents(_one([1.0, 0.0, 0.0]), ["docs_l2:title", "docs_cos:title"])
    with pytest.raises(RequestError, match="not a SQL query"):
        store.get_historical_documents("select 1", ["docs_l2:title"]).to_arrow()
    with pytest.raises(RequestError, match="no feature with a vector index"):
        store.get_historical_documents(_one([1.0, 0.0, 0.0]), ["plain:title"])
    with pytest.raises(RequestError, match="unknown"):
        store.get_historical_documents(_one([1.0, 0.0, 0.0]), ["nope:title"])
