"""Offline retrieval tests' helpers: a repo of vector views built once, refilled per example,
and the brute-force reference of point-in-time retrieval.

The reference picks each document's version at t with tests/support/reference.py's
``winner`` (the point-in-time rules every join follows), drops deleted (NULL vector) and,
for cosine, zero documents, computes distances in float64 with numpy, and sorts by
(distance, key).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.reference import CREATED, EVENT, View, to_utc_naive, winner
from support.repos import drop_postgres_schema, run_dbt, write_repo

DIMS = 3
# name -> (metric, ttl seconds, filter_by_created_timestamp)
VIEWS: dict[str, tuple[str, int, bool]] = {
    "docs_cos": ("cosine", 3600, False),
    "docs_l2": ("l2", 0, False),
    "docs_ip": ("inner_product", 7200, False),
    "docs_fc": ("cosine", 0, True),
}
FEATURES = ("title", "embedding")


def specs(table_prefix: str, dims: int = DIMS) -> dict[str, str]:
    """A repo with one document entity and a vector view per metric (all over one source)."""
    views = "".join(
        f"  - name: {name}\n    entities: [doc]\n    source: raw\n    ttl: {ttl}s\n"
        f"    filter_by_created_timestamp: {'true' if fc else 'false'}\n"
        f"    schema:\n      - {{name: title, dtype: string}}\n"
        f"      - {{name: embedding, dtype: array<float32>, vector: {{dimensions: {dims}, metric: {metric}}}}}\n"
        for name, (metric, ttl, fc) in VIEWS.items()
    )
    text = (
        "entities:\n  - {name: doc, join_keys: [doc_id], value_type: int64}\n"
        f"sources:\n  - name: raw\n    table: {table_prefix}raw_docs\n    timestamp_field: event_timestamp\n"
        "    created_timestamp_column: created\n"
        "feature_views:\n"
        + views
        # a view without a vector feature, which cannot be searched
        + "  - name: plain\n    entities: [doc]\n    source: raw\n    schema:\n      - {name: title, dtype: string}\n"
    )
    return {"docs.yml": text}


@dataclass
class RetrievalHarness:
    """A built repo on one warehouse; ``load`` replaces the fv_ tables' rows directly."""

    engine: str
    root: Path
    postgres_url: str | None = None
    schema: str = "main"

    def execute(self, *statements: str) -> None:
        if self.engine == "duckdb":
            import duckdb

            con = duckdb.connect(str(self.root / "data" / "warehouse.duckdb"))
            try:
                for statement in statements:
                    con.execute(statement).fetchall()
            finally:
                con.close()
        else:
            import psycopg

            with psycopg.connect(self.postgres_url, autocommit=True) as con:
                for statement in statements:
                    con.execute(statement)

    def load(self, rows: list[dict[str, Any]]) -> None:
        """Make every fv_ view table hold exactly ``rows`` (doc_id, times, title, embedding)."""
        columns = ["doc_id", EVENT, CREATED, "title", "embedding"]
        if self.engine == "duckdb":
            import duckdb
            import pyarrow as pa

            data = pa.table(
                {
                    "doc_id": pa.array([r["doc_id"] for r in rows], pa.int64()),
                    EVENT: pa.array([r[EVENT] for r in rows], pa.timestamp("us")),
                    CREATED: pa.array([r[CREATED] for r in rows], pa.timestamp("us")),
                    "title": pa.array([r["title"] for r in rows], pa.string()),
                    "embedding": pa.array([r["embedding"] for r in rows], pa.list_(pa.float32())),
                }
            )
            con = duckdb.connect(str(self.root / "data" / "warehouse.duckdb"))
            try:
                con.register("__fh_rows", data)
                for view in VIEWS:
                    con.execute(f'delete from "{self.schema}"."fv_{view}"').fetchall()
                    con.execute(
                        f'insert into "{self.schema}"."fv_{view}" ({", ".join(columns)}) select * from __fh_rows'
                    ).fetchall()
                con.unregister("__fh_rows")
            finally:
                con.close()
            return
        import psycopg

        with psycopg.connect(self.postgres_url, autocommit=True) as con:
            for view in VIEWS:
                table = f'"{self.schema}"."fv_{view}"'
                con.execute(f"delete from {table}")
                with con.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
                    for r in rows:
                        copy.write_row([r[c] for c in columns])

    def store(self):
        from featurehouse.sdk.store import FeatureStore

        return FeatureStore(self.root, target="dev" if self.engine == "duckdb" else "pg")


def build(engine: str, root: Path, postgres_url: str | None = None, schema: str | None = None) -> RetrievalHarness:
    """Write, compile and ``dbt run`` the repo on ``engine`` (the raw source starts empty)."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    harness = RetrievalHarness(engine, root, postgres_url, schema or "main")
    prefix = "" if engine == "duckdb" else f"{schema}."
    write_repo(root, specs(prefix), postgres_url=postgres_url, postgres_schema=schema or "main", target="dev")
    array = "float[]" if engine == "duckdb" else "real[]"
    statements = [] if engine == "duckdb" else [f'create schema if not exists "{schema}"']
    statements.append(
        f'create table "{harness.schema}"."raw_docs" (doc_id bigint, event_timestamp timestamp, created timestamp, '
        f"title text, embedding {array})"
    )
    harness.execute(*statements)
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, engine))
    # `run`, not `build`: the rows are loaded into the fv_ tables directly, after dbt
    run_dbt(root, "run", target="dev" if engine == "duckdb" else "pg")
    return harness


# ---- the reference -------------------------------------------------------------------------
def distance(metric: str, document: list[float], query: list[float]) -> float | None:
    """The distance a search ranks by, in float64; None when the document cannot be returned."""
    a = np.asarray(document, dtype=np.float32).astype(np.float64)
    b = np.asarray(query, dtype=np.float32).astype(np.float64)
    if metric == "cosine":
        na, nb = float(np.sqrt(a @ a)), float(np.sqrt(b @ b))
        if na == 0:
            return None
        return 1.0 - float(a @ b) / (na * nb)
    if metric == "l2":
        return float(np.sqrt(((a - b) ** 2).sum()))
    return -float(a @ b)


def reference(
    view_name: str, rows: list[dict[str, Any]], spine: list[dict[str, Any]], top_k: int, query_column: str = "query"
) -> list[list[tuple[int, float, dict[str, Any]]]]:
    """Per spine row, the hits (doc_id, distance, winning row) best first."""
    metric, ttl, fc = VIEWS[view_name]
    view = View(view_name, ("doc_id",), FEATURES, ttl, fc, rows, schema=FEATURES)
    keys = sorted({r["doc_id"] for r in rows})
    out = []
    for spine_row in spine:
        t, query = spine_row[EVENT], spine_row[query_column]
        hits = []
        if t is not None and query is not None:
            for key in keys:
                found = winner(view, (key,), to_utc_naive(t))
                if found is None or found["embedding"] is None or len(found["embedding"]) != DIMS:
                    continue
                d = distance(metric, found["embedding"], query)
                if d is not None:
                    hits.append((key, d, found))
        hits.sort(key=lambda h: (h[1], h[0]))
        out.append(hits[:top_k])
    return out


TOLERANCE = 1e-5  # float32 arithmetic in the warehouse against float64 here, on vectors of norm <= ~10


def check(result, spine: list[dict[str, Any]], expected: list[list[tuple[int, float, dict[str, Any]]]]) -> None:
    """The hits per spine row match the reference: same documents (up to ties within tolerance),
    distances within TOLERANCE, ranked by (distance, key), features of the winning version."""
    got_rows: dict[int, list[dict[str, Any]]] = {}
    table = result.to_pylist()
    # one row per hit, in spine order; a spine row without hits appears once with NULL rank
    order = [r["__spine"] for r in table]
    assert order == sorted(order), "rows are not in spine order"
    for r in table:
        got_rows.setdefault(r["__spine"], [])
        if r["rank"] is not None:
            got_rows[r["__spine"]].append(r)
        else:
            assert r["doc_id"] is None and r["distance"] is None and r["title"] is None
    assert sorted(got_rows) == list(range(len(spine))), "a spine row was dropped"
    for i, want in enumerate(expected):
        got = got_rows[i]
        got_pairs = [(g["doc_id"], g["distance"]) for g in got]
        context = f"spine row {i} {spine[i]}: got {got_pairs}, expected {[(k, d) for k, d, _ in want]}"
        assert [g["rank"] for g in got] == list(range(1, len(got) + 1)), context
        assert len(got) == len(want), context
        for g, (_, d, _) in zip(got, want):
            assert math.isclose(g["distance"], d, rel_tol=TOLERANCE, abs_tol=TOLERANCE), context
        # ranked by the warehouse's own distances, then key
        assert [(g["distance"], g["doc_id"]) for g in got] == sorted((g["distance"], g["doc_id"]) for g in got), context
        if not want:
            continue
        boundary = want[-1][1]
        want_keys = {k for k, d, _ in want if d < boundary - TOLERANCE}
        got_keys = {g["doc_id"] for g in got}
        assert want_keys <= got_keys, context
        by_key = {k: row for k, _, row in want}
        for g in got:
            if g["doc_id"] in by_key:
                row = by_key[g["doc_id"]]
                assert g["title"] == row["title"], context
                assert g["embedding"] == pytest.approx(row["embedding"]), context


# ---- fixtures (a plugin: `pytest_plugins = ["support.retrieval"]`) ---------------------------
@pytest.fixture(scope="session")
def duckdb_retrieval(tmp_path_factory) -> RetrievalHarness:
    return build("duckdb", tmp_path_factory.mktemp("h3_retrieval_duckdb"))


@pytest.fixture(scope="session")
def postgres_retrieval(tmp_path_factory, postgres_url: str):
    schema = f"h3_retrieval_{uuid.uuid4().hex[:8]}"
    harness = build("postgres", tmp_path_factory.mktemp("h3_retrieval_pg"), postgres_url, schema)
    yield harness
    drop_postgres_schema(postgres_url, schema)


@pytest.fixture(scope="session")
def pgvector_retrieval(tmp_path_factory):
    from support.pgvector_server import find_pgvector

    try:
        server = find_pgvector()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    schema = f"h3_retrieval_{uuid.uuid4().hex[:8]}"
    harness = build("postgres", tmp_path_factory.mktemp("h3_retrieval_pgvector"), server.url, schema)
    yield harness
    drop_postgres_schema(server.url, schema)
    server.close()


BASE = dt.datetime(2024, 3, 31, 0, 0)
