"""Vector dimensions are checked where they can be: at compile (file sources with fixed-size
arrays) and by the dbt test the compiler adds to schema.yml (every warehouse row)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from support.online import rebuild
from support.vectors import write_doc_repo

from featurehouse.compile import compiler
from featurehouse.errors import SpecError
from featurehouse.spec.repo import load_repo

T = datetime(2026, 1, 1)


def rows(lengths: dict[int, int | None]) -> list[dict]:
    return [dict(doc_id=k, event_timestamp=T, title=f"t{k}", lang="en",
                 embedding=None if n is None else [0.5] * n) for k, n in lengths.items()]


def test_schema_yml_tests_the_vector_column(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, rows({1: 4}))
    schema = yaml.safe_load(compiler.compile_repo(load_repo(root), "duckdb")["schema.yml"])
    model = next(m for m in schema["models"] if m["name"] == "fv_docs")
    column = next(c for c in model["columns"] if c["name"] == "embedding")
    assert column["data_tests"] == [{"featurehouse.vector_dimensions": {
        "arguments": {"dimensions": 4, "keys": ["doc_id"], "view": "docs"}}}]
    assert column["config"]["meta"]["vector"] == {"dimensions": 4, "metric": "cosine"}


def test_dbt_build_passes_with_right_lengths_and_nulls(tmp_path: Path) -> None:
    rebuild(write_doc_repo(tmp_path, rows({1: 4, 2: None, 3: 4})))


def as_dbt_model_source(root: Path) -> None:
    """The docs read through a dbt model: compile cannot see the rows, the dbt test must."""
    specs = root / "feature_specs" / "docs.yml"
    specs.write_text(specs.read_text().replace("path: data/docs.parquet", "ref: raw_docs"))
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "raw_docs.sql").write_text("select * from read_parquet('data/docs.parquet')\n")


def test_dbt_build_fails_on_a_wrong_length_naming_the_view_key_and_length(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, rows({1: 4, 9: 5, 7: 3, 2: 4}))
    as_dbt_model_source(root)
    with pytest.raises(AssertionError) as error:
        rebuild(root)
    assert ("feature view 'docs': the vector feature 'embedding' of key (doc_id=7) has 3 dimensions, but its spec "
            "declares vector.dimensions 4") in str(error.value)


def _fixed_size_file(root: Path, size: int, kind: pa.DataType | None = None) -> None:
    kind = kind or pa.list_(pa.float32(), size)
    table = pa.table({"doc_id": pa.array([1], pa.int64()), "event_timestamp": pa.array([T], pa.timestamp("us")),
                      "title": ["t"], "lang": ["en"],
                      "embedding": pa.array([[0.5] * size] if kind != pa.string() else ["x"], kind)})
    pq.write_table(table, root / "data" / "docs.parquet")


def test_compile_checks_the_lengths_in_a_file_source(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, rows({1: 4, 9: 5, 7: 3, 2: None}))
    with pytest.raises(SpecError) as error:
        compiler.compile_repo(load_repo(root), "duckdb")
    assert str(error.value) == (
        "feature_specs/docs.yml:17: feature view 'docs', feature 'embedding': vector.dimensions is 4, but in "
        "data/docs.parquet the row with doc_id=7 has 3 elements in column 'embedding'; fix the file or the spec")


def test_compile_checks_a_file_of_fixed_size_arrays(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, [])
    _fixed_size_file(root, 3)
    with pytest.raises(SpecError, match=r"docs.yml:17: .*vector.dimensions is 4, but in data/docs.parquet the row "
                                        r"with doc_id=1 has 3 elements"):
        compiler.compile_repo(load_repo(root), "duckdb")


def test_compile_accepts_the_right_fixed_size(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, [])
    _fixed_size_file(root, 4)
    assert "fv_docs.sql" in compiler.compile_repo(load_repo(root), "duckdb")


def test_compile_refuses_a_column_that_is_not_a_list_of_numbers(tmp_path: Path) -> None:
    root = write_doc_repo(tmp_path, [])
    _fixed_size_file(root, 1, pa.string())
    with pytest.raises(SpecError, match=r"column 'embedding' of data/docs.parquet is VARCHAR, which is not a list "
                                        r"of numbers"):
        compiler.compile_repo(load_repo(root), "duckdb")


PG_SPECS = """\
entities:
  - name: doc
    join_keys: [doc_id]
    value_type: int64
sources:
  - name: doc_source
    table: SCHEMA.raw_docs
    timestamp_field: event_timestamp
feature_views:
  - name: docs
    entities: [doc]
    source: doc_source
    schema:
      - {name: title, dtype: string}
      - {name: embedding, dtype: array<float32>, vector: {dimensions: 3, metric: l2}}
"""


@pytest.mark.postgres
def test_dbt_build_on_postgres_fails_on_a_wrong_length(tmp_path: Path, postgres_url: str, postgres_schema: str) -> None:
    import psycopg
    from support.repos import run_dbt, write_repo

    root = write_repo(tmp_path / "pg", {"docs.yml": PG_SPECS.replace("SCHEMA", postgres_schema)},
                      postgres_url=postgres_url, postgres_schema=postgres_schema, target="pg")
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{postgres_schema}"')
        con.execute(f'CREATE TABLE "{postgres_schema}".raw_docs (doc_id bigint, event_timestamp timestamp, '
                    'title text, embedding real[])')
        con.execute(f'INSERT INTO "{postgres_schema}".raw_docs VALUES (1, now(), \'a\', ARRAY[1, 2, 3]), '
                    "(2, now(), 'b', NULL), (5, now(), 'c', ARRAY[1, 2, 3, 4]), (4, now(), 'd', ARRAY[1, 2])")
    repo = load_repo(root)
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, "postgres"))
    with pytest.raises(AssertionError) as error:
        run_dbt(root, "build", "--quiet", target="pg")
    assert ("feature view 'docs': the vector feature 'embedding' of key (doc_id=4) has 2 dimensions, but its spec "
            "declares vector.dimensions 3") in str(error.value)
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'DELETE FROM "{postgres_schema}".raw_docs WHERE doc_id IN (4, 5)')
    run_dbt(root, "build", "--quiet", target="pg")
