"""The example's document corpus: its embedding, its history, and that the quickstart's search
(init → dbt build → sync → retrieve_online_documents) returns documents of the query's topic."""

from __future__ import annotations

import csv
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from featurehouse.cli.example_documents import DIMENSIONS, TOPICS, corpus_rows, embed_text

NOW = datetime(2026, 11, 27, 12, 0)


def test_embedding_is_deterministic_normalised_and_ignores_case_and_stop_words():
    vector = embed_text("The oven and the FLOUR")
    assert len(vector) == DIMENSIONS
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-12)
    assert vector == embed_text("oven flour") == embed_text("flour, OVEN!")
    assert embed_text("") == [0.0] * DIMENSIONS == embed_text("the and of")


def test_corpus_has_200_documents_with_revisions_and_withdrawals():
    rows = corpus_rows(random.Random(7), NOW - timedelta(days=7), NOW)
    ids = [r[0] for r in rows]
    assert len(set(ids)) == 200
    versions = {i: [r for r in rows if r[0] == i] for i in set(ids)}
    revised = [i for i, v in versions.items() if len(v) > 1 and v[-1][7]]
    withdrawn = [i for i, v in versions.items() if not v[-1][7]]
    assert len(revised) >= 10 and 1 <= len(withdrawn) <= 20
    assert {r[4] for r in rows} == {"en", "pt"}
    assert corpus_rows(random.Random(7), NOW - timedelta(days=7), NOW) == rows  # same seed, same corpus


@pytest.fixture(scope="module")
def example_repo(tmp_path_factory) -> Path:
    from click.testing import CliRunner
    from support.repos import reset_dbt_duckdb, run_dbt

    from featurehouse.cli import main
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    root = tmp_path_factory.mktemp("h3_example") / "repo"
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    run_dbt(root, "deps")
    run_dbt(root, "build")
    reset_dbt_duckdb()
    sync(FeatureStore(root), views=["documents"])
    return root


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_quickstart_search_returns_documents_of_the_query_topic(example_repo, topic):
    from featurehouse.sdk.store import FeatureStore

    store = FeatureStore(example_repo)
    english = TOPICS[topic][0]
    query = embed_text(" ".join(english[:3]))
    found = store.retrieve_online_documents(
        ["documents:title", "documents:topic"], query, top_k=5, where={"lang": "en"}
    ).to_dict()
    assert found["topic"] == [topic] * 5, found
    assert found["distance"] == sorted(found["distance"])


def test_offline_retrieval_sees_a_document_before_its_revision(example_repo):
    """Point in time on the example: before a revision the old text is retrieved, after it the new."""
    import pandas as pd

    from featurehouse.sdk.store import FeatureStore

    with (example_repo / "seeds" / "raw_documents.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(row["doc_id"], []).append(row)
    doc_id, (first, second) = next((k, v) for k, v in by_id.items() if len(v) == 2 and v[1]["embedding_text"])
    before = pd.Timestamp(second["event_timestamp"]) - pd.Timedelta(seconds=1)
    after = pd.Timestamp(second["event_timestamp"])
    frame = pd.DataFrame(
        {
            "event_timestamp": [before, after],
            "query": [embed_text(first["text"]), embed_text(second["text"])],
        }
    )
    hits = FeatureStore(example_repo).get_historical_documents(frame, ["documents:text"], top_k=1).to_df()
    assert hits["doc_id"].tolist() == [int(doc_id), int(doc_id)]
    assert hits["text"].tolist() == [first["text"], second["text"]]
    assert hits["distance"].abs().max() < 1e-5
