"""``featurehouse check`` on a view with a vector feature (SQLite online store, DuckDB warehouse):
exact online search against offline point-in-time retrieval at the sync time, and recall@k."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from support.repos import run_dbt, write_repo

from featurehouse.online.check_vectors import DISTANCE_TOLERANCE, compare_hits

NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
SPECS = {
    "docs.yml": """\
entities:
  - {name: doc, join_keys: [doc_id], value_type: int64}
sources:
  - {name: raw, table: raw_docs, timestamp_field: event_timestamp}
feature_views:
  - name: docs
    entities: [doc]
    source: raw
    ttl: 30d
    online: true
    schema:
      - {name: title, dtype: string}
      - {name: embedding, dtype: array<float32>, vector: {dimensions: 4, metric: cosine}}
"""
}


def _rows() -> list[tuple]:
    """40 documents, some updated later, one deleted, one expired (older than the ttl)."""
    rows = []
    for i in range(1, 41):
        vector = [float((i * 7 + j * 3) % 5 - 2) for j in range(4)]
        if not any(vector):
            vector[0] = 1.0
        rows.append((i, NOW - dt.timedelta(days=2), f"doc {i}", vector))
        if i % 7 == 0:
            rows.append((i, NOW - dt.timedelta(days=1), f"doc {i} v2", [v + 1.0 for v in vector]))
    rows.append((3, NOW - dt.timedelta(hours=5), "deleted", None))
    rows.append((41, NOW - dt.timedelta(days=60), "expired", [1.0, 0.0, 0.0, 0.0]))
    return rows


def _synced(root, **online):
    import duckdb
    from support.repos import reset_dbt_duckdb

    from featurehouse.compile import compiler
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.spec.repo import load_repo
    from featurehouse.sync import sync

    root = write_repo(root, SPECS, **online)
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.execute("create table raw_docs (doc_id bigint, event_timestamp timestamp, title text, embedding float[])")
    con.executemany("insert into raw_docs values (?, ?, ?, ?)", _rows())
    con.close()
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    run_dbt(root, "run")
    reset_dbt_duckdb()
    sync(FeatureStore(root))
    return root


@pytest.fixture(scope="module")
def synced_repo(tmp_path_factory):
    return _synced(tmp_path_factory.mktemp("h3_check_vectors"))


def test_check_finds_no_skew_and_full_recall_after_a_sync(synced_repo):
    from featurehouse.online.check import audit
    from featurehouse.sdk.store import FeatureStore

    result = audit(FeatureStore(synced_repo))
    assert result.differences == []
    search = [s for s in result.summaries if "searches" in s]
    assert len(search) == 1
    assert search[0].startswith("docs: 20 searches (top 10) compared with offline retrieval as of the sync at ")
    assert search[0].endswith("0 difference(s); recall@10 of the index against exact search: 1.00")


def test_check_command_prints_the_search_audit(synced_repo):
    from featurehouse.cli import main

    result = CliRunner().invoke(main, ["--repo", str(synced_repo), "check"])
    assert result.exit_code == 0, result.output
    assert "recall@10 of the index against exact search: 1.00" in result.output


def test_check_reports_a_document_whose_vector_differs_offline(synced_repo, tmp_path):
    """A warehouse row changed after the sync (a vector rewritten in place) is skew the audit lists."""
    import shutil

    import duckdb

    from featurehouse.online.check import audit
    from featurehouse.sdk.store import FeatureStore

    copy = tmp_path / "repo"
    shutil.copytree(synced_repo, copy, symlinks=True)
    con = duckdb.connect(str(copy / "data" / "warehouse.duckdb"))
    con.execute("update fv_docs set embedding = [-1.0, -1.0, -1.0, -1.0]::float[] where doc_id = 1").fetchall()
    con.close()
    differences = audit(FeatureStore(copy)).differences
    assert any(d.startswith("docs query ") for d in differences), differences


def test_check_on_postgres_compares_exact_search_and_reports_the_hnsw_recall(tmp_path, pgvector_url):
    """The online store is Postgres with pgvector: exact search equals offline retrieval, and the
    recall line measures the HNSW index (every document is findable in a corpus this small)."""
    import uuid

    from featurehouse.online.check import audit
    from featurehouse.sdk.store import FeatureStore

    schema = f"check_vectors_{uuid.uuid4().hex[:8]}"
    online = f"  type: postgres\n  url: {pgvector_url}\n  schema: {schema}\n"
    root = _synced(tmp_path / "repo", online_store=online)
    result = audit(FeatureStore(root))
    assert result.differences == []
    (search,) = [s for s in result.summaries if "searches" in s]
    assert search.endswith("0 difference(s); recall@10 of the index against exact search: 1.00"), search


# ---- the comparison rule ---------------------------------------------------------------------
def test_near_ties_within_tolerance_may_swap():
    online = [((1,), 0.1), ((2,), 0.2), ((3,), 0.2 + DISTANCE_TOLERANCE / 10)]
    offline = [((1,), 0.1), ((3,), 0.2), ((2,), 0.2)]
    assert compare_hits(online, offline) == ""
    # at the cut-off, a near tie may bring either document
    assert compare_hits([((1,), 0.1), ((2,), 0.5)], [((1,), 0.1), ((9,), 0.5 + DISTANCE_TOLERANCE / 10)]) == ""


def test_real_differences_are_named():
    assert compare_hits([((1,), 0.1)], []) == "online returns 1 document(s), offline 0"
    assert compare_hits([((1,), 0.1), ((2,), 0.3)], [((1,), 0.1), ((2,), 0.4)]) == (
        "rank 2: online 2 at distance 0.3, offline 2 at 0.4"
    )
    assert compare_hits([((1,), 0.1), ((2,), 0.3)], [((5,), 0.1), ((2,), 0.3)]) == "document 5 is missing online"


def test_recall_counts_ties_at_the_cut_off_but_not_farther_documents():
    from featurehouse.online.check_vectors import _found

    exact = [((1,), 0.1), ((2,), 0.3), ((3,), 0.3)]
    assert _found(exact, [0.1, 0.3, 0.3]) == 3  # another document tied at 0.3 is as right as key 3
    assert _found(exact, [0.1, 0.3, 0.35]) == 2  # a farther document is a miss
    assert _found(exact, [0.3, 0.4, 0.5]) == 1
    assert _found([], [0.1]) == 0
