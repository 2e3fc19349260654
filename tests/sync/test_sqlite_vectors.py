"""SQLite vector search (sqlite-vec) against a numpy brute-force reference.

The store is written the way `featurehouse sync` writes it (SQLiteBackend.write: a full
refresh, or an incremental upsert that never replaces a row with an older one), then
searched with SearchRequests; every answer is checked against tests/support/vectors.py's
reference of docs/vector-search.md's rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.vectors import Doc, assert_matches_reference

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.layout import SyncState, ViewLayout, normalise
from featurehouse.sync.search_types import SearchRequest
from featurehouse.sync.sqlite import SQLiteBackend

NOW = datetime(2026, 6, 1, 12, 0, 0)
TTL = 3 * 86400


def layout_for(dims: int, metric: str, ttl: int = TTL) -> ViewLayout:
    return ViewLayout("docs", ("doc_id",), ("int64",), ("title", "lang", "embedding"),
                      ("string", "string", "array<float32>"), ttl, ("embedding", dims, metric))


def table_of(docs: list[Doc], layout: ViewLayout) -> pa.Table:
    table = pa.table({
        "doc_id": pa.array([d.key for d in docs], pa.int64()),
        "event_timestamp": pa.array([d.event for d in docs], pa.timestamp("us")),
        "created_timestamp": pa.array([None] * len(docs), pa.timestamp("us")),
        "title": pa.array([d.title for d in docs], pa.string()),
        "lang": pa.array([d.lang for d in docs], pa.string()),
        "embedding": pa.array([d.vector for d in docs], pa.list_(pa.float32())),
    })
    return normalise(table, layout)


def write(backend: SQLiteBackend, layout: ViewLayout, docs: list[Doc], full: bool) -> None:
    table = table_of(docs, layout)
    state = SyncState("docs", layout.signature, datetime.now(timezone.utc), len(docs), np.zeros(len(docs), np.uint64))
    changed = None if full else np.ones(len(docs), dtype=bool)
    backend.write(layout, table, changed, state, lambda rows: None)


def search(backend: SQLiteBackend, layout: ViewLayout, query: list[float], top_k: int, where=None,
           not_before: datetime | None = None, features=("title", "lang", "embedding")):
    request = SearchRequest("embedding", tuple(features), np.asarray(query, dtype=np.float32), top_k,
                            layout.vector[2], tuple((where or {}).items()), not_before)
    return backend.search(layout, request)


@pytest.fixture
def store(tmp_path: Path):
    backend = SQLiteBackend(tmp_path / "online.db")
    yield backend
    backend.close()


# ---- hypothesis: documents over several syncs ----------------------------------------------------------------
GRID = st.integers(-2, 2)  # small integers: many exact ties in distance


@st.composite
def scenarios(draw):
    metric = draw(st.sampled_from(["cosine", "l2", "inner_product"]))
    dims = draw(st.integers(1, 5))
    keys = draw(st.integers(0, 25))
    rounds = []
    used: dict[int, set[int]] = {}
    for i in range(draw(st.integers(1, 3))):
        docs = []
        for key in range(keys):
            if not draw(st.booleans()) and i > 0:
                continue  # not in this snapshot: gone (full refresh) or unchanged (incremental)
            # event times: minutes before NOW, distinct per key (no full ties: the tie rule has its own tests)
            minute = draw(st.integers(0, 6 * 24 * 60).filter(lambda m, k=key: m not in used.get(k, set())))
            used.setdefault(key, set()).add(minute)
            vector = draw(st.one_of(st.none(), st.lists(GRID, min_size=dims, max_size=dims)))
            docs.append(Doc(key, NOW - timedelta(minutes=minute), draw(st.sampled_from(["a", "b", None])),
                            draw(st.sampled_from(["en", "pt"])), vector))
        rounds.append((docs, i == 0 or draw(st.booleans())))
    query = draw(st.lists(GRID, min_size=dims, max_size=dims).filter(lambda q: metric != "cosine" or any(q)))
    top_k = draw(st.integers(1, 30))
    where = draw(st.sampled_from([None, {"lang": "en"}, {"lang": "pt", "title": "a"}]))
    ttl = draw(st.sampled_from([0, TTL]))
    return metric, dims, rounds, query, top_k, where, ttl


def expected_docs(rounds) -> dict[int, Doc]:
    """What the store holds: a full refresh replaces the view, an incremental sync keeps newer rows."""
    held: dict[int, Doc] = {}
    for docs, full in rounds:
        if full:
            held = {d.key: d for d in docs}
        else:
            for d in docs:
                if d.key not in held or d.event > held[d.key].event:
                    held[d.key] = d
    return held


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_search_equals_the_reference(tmp_path_factory, scenario) -> None:
    metric, dims, rounds, query, top_k, where, ttl = scenario
    backend = SQLiteBackend(tmp_path_factory.mktemp("vec") / "online.db")
    try:
        layout = layout_for(dims, metric, ttl)
        for docs, full in rounds:
            write(backend, layout, docs, full)
        held = expected_docs(rounds)
        not_before = NOW - timedelta(seconds=ttl) if ttl else None
        hits = search(backend, layout, query, top_k, where, not_before)
        assert_matches_reference(hits, held, query, metric, top_k, where, not_before, context=str(scenario))
        for hit in hits:  # each hit carries the document's own values
            doc = held[hit.key[0]]
            assert hit.values == (doc.title, doc.lang, [float(x) for x in doc.vector])
            assert hit.event_timestamp == doc.event.replace(tzinfo=timezone.utc)
    finally:
        backend.close()


# ---- the rules, one case each ---------------------------------------------------------------------------------
def test_ties_in_distance_come_back_by_key(store) -> None:
    layout = layout_for(3, "cosine")
    docs = [Doc(k, NOW, f"t{k}", "en", [1.0, 2.0, 3.0]) for k in (9, 3, 7, 1)] + [Doc(5, NOW, "x", "en", [3, 2, 1])]
    write(store, layout, docs, full=True)
    hits = search(store, layout, [1, 2, 3], 3)
    assert [h.key for h in hits] == [(1,), (3,), (7,)]
    assert len({h.distance for h in hits}) == 1


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_top_k_larger_than_the_corpus_returns_every_document(store, metric) -> None:
    layout = layout_for(2, metric)
    write(store, layout, [Doc(k, NOW, None, "en", [k, 1.0]) for k in range(4)], full=True)
    assert len(search(store, layout, [1, 1], 1000)) == 4


def test_zero_document_vectors_are_never_returned_by_cosine(store) -> None:
    layout = layout_for(2, "cosine")
    write(store, layout, [Doc(1, NOW, None, "en", [0, 0]), Doc(2, NOW, None, "en", [1, 0]),
                          Doc(3, NOW, None, "en", None)], full=True)
    assert [h.key for h in search(store, layout, [1, 1], 10)] == [(2,)]


def test_zero_document_vectors_are_returned_by_l2_and_inner_product(store) -> None:
    for metric in ("l2", "inner_product"):
        layout = layout_for(2, metric)
        write(store, layout, [Doc(1, NOW, None, "en", [0, 0]), Doc(2, NOW, None, "en", [1, 0])], full=True)
        assert {h.key for h in search(store, layout, [1, 1], 10)} == {(1,), (2,)}


def test_expired_documents_are_not_returned_and_top_k_is_filled_with_live_ones(store) -> None:
    layout = layout_for(2, "l2")
    docs = [Doc(k, NOW - timedelta(days=5), None, "en", [0, 0]) for k in range(5)]  # nearest, but expired
    docs += [Doc(10 + k, NOW - timedelta(hours=1), None, "en", [k + 1, 0]) for k in range(5)]
    write(store, layout, docs, full=True)
    hits = search(store, layout, [0, 0], 3, not_before=NOW - timedelta(days=3))
    assert [h.key for h in hits] == [(10,), (11,), (12,)]


def test_where_filters_are_anded_and_fill_top_k(store) -> None:
    layout = layout_for(1, "l2")
    docs = [Doc(k, NOW, "a" if k % 2 else "b", "pt" if k % 3 else "en", [float(k)]) for k in range(30)]
    write(store, layout, docs, full=True)
    hits = search(store, layout, [0], 4, where={"lang": "pt", "title": "a"})
    assert [h.key[0] for h in hits] == [1, 5, 7, 11]


def test_nan_in_a_vector_is_refused_at_sync_naming_the_key_and_nothing_changes(store) -> None:
    layout = layout_for(2, "l2")
    write(store, layout, [Doc(1, NOW, "old", "en", [1, 1])], full=True)
    with pytest.raises(OnlineStoreError) as error:
        write(store, layout, [Doc(1, NOW, "new", "en", [1, 1]), Doc(42, NOW, "bad", "en", [0.5, float("nan")])],
              full=True)
    message = str(error.value)
    assert "feature view 'docs'" in message and "(doc_id=42)" in message and "'embedding'" in message
    assert "nan" in message.lower() and "\n" not in message
    assert [(h.key, h.values[0]) for h in search(store, layout, [1, 1], 10)] == [((1,), "old")]


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_infinity_in_a_vector_is_refused_at_sync(store, value) -> None:
    layout = layout_for(2, "cosine")
    with pytest.raises(OnlineStoreError, match=r"doc_id=7\).*finite"):
        write(store, layout, [Doc(7, NOW, None, "en", [value, 1.0])], full=True)


def test_a_vector_of_the_wrong_length_is_refused_at_sync(store) -> None:
    layout = layout_for(3, "cosine")
    with pytest.raises(OnlineStoreError, match=r"doc_id=8\) has 2 dimensions, but its spec declares "
                                                r"vector.dimensions 3"):
        write(store, layout, [Doc(1, NOW, None, "en", [1, 2, 3]), Doc(8, NOW, None, "en", [1, 2])], full=True)


def test_a_null_element_in_a_vector_is_refused_at_sync(store) -> None:
    layout = layout_for(2, "cosine")
    with pytest.raises(OnlineStoreError, match=r"doc_id=3\).*null element"):
        write(store, layout, [Doc(3, NOW, None, "en", [1.0, None])], full=True)


def test_a_view_never_synced_is_one_sentence(store) -> None:
    layout = layout_for(2, "cosine")
    other = ViewLayout("other", ("doc_id",), ("int64",), ("title",), ("string",), 0)
    write(store, layout, [Doc(1, NOW, None, "en", [1, 1])], full=True)
    with pytest.raises(OnlineStoreError, match="has not been synced"):
        store.search(ViewLayout("nope", *[getattr(layout, f) for f in ("join_keys", "key_dtypes", "features",
                                                                        "dtypes", "ttl", "vector")]),
                     SearchRequest("embedding", (), np.ones(2, np.float32), 1, "cosine"))
    assert other.vector is None


def test_a_changed_index_needs_a_sync_first(store) -> None:
    write(store, layout_for(2, "cosine"), [Doc(1, NOW, None, "en", [1, 1])], full=True)
    with pytest.raises(OnlineStoreError, match="run 'featurehouse sync' to search it"):
        search(store, layout_for(2, "l2"), [1, 1], 1)


def test_get_online_features_reads_the_stored_vector_back(store) -> None:
    layout = layout_for(3, "cosine")
    write(store, layout, [Doc(1, NOW, "t", "en", [0.25, -1.5, 3.0])], full=True)
    reader = store.reader()
    prepared = reader.prepare(layout, ["embedding", "title"])
    [[(_, values)]] = reader.read([(prepared, [(1,)])])
    assert values == [[0.25, -1.5, 3.0], "t"]
    reader.close()


def test_a_corrupt_stored_vector_fails_the_search_in_one_sentence(store, tmp_path) -> None:
    """A BLOB that is not whole float32 values (the file damaged outside featurehouse): the search
    says which store and what sqlite-vec found, no traceback; a sync --full-refresh rewrites it."""
    import sqlite3

    layout = layout_for(3, "cosine")
    write(store, layout, [Doc(k, NOW, f"t{k}", "en", [1.0, float(k), 0.0]) for k in (1, 2, 3)], full=True)
    store.close()
    con = sqlite3.connect(tmp_path / "online.db")
    con.execute("update docs set embedding = x'000000' where doc_id = 2")
    con.commit()
    con.close()
    with pytest.raises(OnlineStoreError, match=r"searching the SQLite online store .* failed: .*divisible by 4") as error:
        search(store, layout, [1, 1, 0], 3)
    assert "\n" not in str(error.value)
    write(store, layout, [Doc(k, NOW, f"t{k}", "en", [1.0, float(k), 0.0]) for k in (1, 2, 3)], full=True)
    assert [h.key for h in search(store, layout, [1, 1, 0], 3)] == [(1,), (2,), (3,)]
