"""kill -9 during a sync that writes embeddings, then the rerun: search equals the reference.

A repo of 30,000 documents x 64 dimensions (DuckDB, SQLite store) is synced, its embeddings
are changed (some documents get a newer vector, some are deleted by a full build), and each
sync of the change is killed at a random point of its run, then run again as cron would. The
store must answer every query exactly as the numpy reference over the snapshot does: the
embeddings are written in the sync's one transaction, so a killed sync leaves the old view.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from support.online import rebuild_in_subprocess
from support.vectors import Doc, assert_matches_reference, doc_rows, now_utc, write_doc_repo, write_docs

from featurehouse.sdk.store import FeatureStore
from featurehouse.sync import sync

pytestmark = pytest.mark.slow

DOCS = 30_000
DIMS = 64
CLI = [sys.executable, "-c", "from featurehouse.cli.app import main; main()"]
NOW = now_utc()


def documents(seed: int, gone: int = 0, base: dict[int, Doc] | None = None, changed: float = 1.0) -> dict[int, Doc]:
    rng = np.random.default_rng(seed)
    docs = {}
    for key in range(gone, DOCS):
        if base is not None and rng.random() >= changed:
            docs[key] = base[key]
            continue
        vector = rng.integers(-3, 4, DIMS).astype(float).tolist()
        # a changed document is always newer than the one it replaces (an older row never replaces a newer one)
        age = float(rng.uniform(0.6, 2.5)) if base is None else float(rng.uniform(0, 0.5))
        docs[key] = Doc(key, (NOW - timedelta(days=age)).replace(microsecond=0), f"doc {key}", "en", vector)
    return docs


def check(store: FeatureStore, docs: dict[int, Doc], context: str) -> None:
    rng = random.Random(context)
    for _ in range(5):
        query = [float(rng.randint(-3, 3)) for _ in range(DIMS)]
        query[0] = query[0] or 1.0
        result = store.retrieve_online_documents(["docs:title"], query, top_k=10).to_dict()
        assert_matches_reference(list(zip(result["doc_id"], result["distance"])), docs, query, "cosine", 10,
                                 not_before=NOW - timedelta(days=3), context=context)


def kill_during(root: Path, args: list[str], delay: float) -> int:
    process = subprocess.Popen([*CLI, "--repo", str(root), "sync", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


def test_kill_9_during_an_embedding_sync_then_rerun_gives_the_reference(tmp_path: Path) -> None:
    seed = int(os.environ.get("FEATUREHOUSE_TEST_SEED", time.time()))
    rng = random.Random(seed)
    docs = documents(1)
    root = write_doc_repo(tmp_path / "repo", doc_rows(docs), dims=DIMS)
    rebuild_in_subprocess(root)
    started = time.monotonic()
    subprocess.run([*CLI, "--repo", str(root), "sync", "--views", "docs"], check=True, capture_output=True)
    duration = time.monotonic() - started
    check(FeatureStore(root), docs, f"seed {seed}, first sync")

    for phase, (new_docs, full) in enumerate([(documents(2, base=docs, changed=0.3), False),
                                              (documents(3, gone=500, base=docs, changed=0.5), True)]):
        write_docs(root, doc_rows(new_docs))
        rebuild_in_subprocess(root, full_refresh=full)
        args = ["--views", "docs", *(["--full-refresh"] if full else [])]
        delay = rng.uniform(0.3, 0.95) * duration
        code = kill_during(root, args, delay)
        store = FeatureStore(root)
        context = f"seed {seed}, phase {phase}, killed at {delay:.2f} s of {duration:.2f} s (exit {code})"
        sync(store, ["docs"], full_refresh=full, wait=20)
        check(store, new_docs, context)
        docs = new_docs
