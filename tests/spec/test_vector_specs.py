"""`vector:` on features: each mistake is one sentence with the file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from featurehouse.errors import SpecError
from featurehouse.spec.repo import load_repo

SPEC = textwrap.dedent("""\
    entities:
      - name: doc
        join_keys: [doc_id]
    sources:
      - name: doc_source
        table: raw.docs
        timestamp_field: event_timestamp
    feature_views:
      - name: docs
        entities: [doc]
        source: doc_source
        schema:
          - {name: title, dtype: string}
          - {name: embedding, dtype: array<float32>, vector: VECTOR}
    """)
F = "feature_specs/docs.yml"


def load(tmp_path: Path, vector: str, embedding_line: str | None = None):
    text = SPEC.replace("VECTOR", vector)
    if embedding_line is not None:
        text = text.replace("      - {name: embedding, dtype: array<float32>, vector: " + vector + "}\n", embedding_line)
    (tmp_path / "feature_specs").mkdir(exist_ok=True)
    (tmp_path / "feature_specs" / "docs.yml").write_text(text)
    (tmp_path / "featurehouse.yml").write_text("project: test_repo\nspecs: feature_specs\n")
    return load_repo(tmp_path)


def test_a_vector_feature_loads(tmp_path: Path) -> None:
    repo = load(tmp_path, "{dimensions: 384, metric: l2}")
    view = repo.feature_views["docs"]
    assert view.vector_feature is not None and view.vector_feature.name == "embedding"
    assert (view.vector_feature.vector.dimensions, view.vector_feature.vector.metric) == (384, "l2")


def test_the_metric_defaults_to_cosine(tmp_path: Path) -> None:
    repo = load(tmp_path, "{dimensions: 3}")
    assert repo.feature_views["docs"].vector_feature.vector.metric == "cosine"


def test_a_view_without_one_has_no_vector_feature(tmp_path: Path) -> None:
    repo = load(tmp_path, "{dimensions: 3}", "      - {name: embedding, dtype: array<float32>}\n")
    assert repo.feature_views["docs"].vector_feature is None


@pytest.mark.parametrize(("vector", "message"), [
    ("{dimensions: 3, metric: cosin}", "expected one of cosine, l2, inner_product, got 'cosin' (did you mean 'cosine'?)"),
    ("{dimensions: 3, metric: euclidean}", "got 'euclidean' (did you mean 'l2'?)"),
    ("{dimensions: 3, metric: dot}", "got 'dot' (did you mean 'inner_product'?)"),
    ("{dimensions: 3, metric: L2}", "got 'L2' (did you mean 'l2'?)"),
    ("{dimensions: 0}", "expected from 1 to 16000 dimensions, got 0"),
    ("{dimensions: 16001}", "expected from 1 to 16000 dimensions, got 16001"),
    ("{dimensions: '384'}", "expected a whole number of dimensions from 1 to 16000, got '384'"),
    ("{dimensions: 3.5}", "expected a whole number of dimensions from 1 to 16000, got 3.5"),
    ("{dimensions: true}", "expected a whole number of dimensions from 1 to 16000, got True"),
    ("{metric: cosine}", "dimensions"),
    ("{dimensions: 3, metrc: l2}", "metrc"),
])
def test_bad_vector_is_one_sentence_with_file_and_line(tmp_path: Path, vector: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        load(tmp_path, vector)
    text = str(error.value)
    assert text.startswith(f"{F}:14: ") and message in text and "\n" not in text, text


def test_vector_needs_array_float32(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as error:
        load(tmp_path, "{dimensions: 3}", "      - {name: embedding, dtype: array<float64>, vector: {dimensions: 3}}\n")
    assert str(error.value).startswith(f"{F}:14: ")
    assert "a vector index needs dtype array<float32>, but 'embedding' is array<float64>" in str(error.value)


def test_at_most_one_vector_feature_per_view(tmp_path: Path) -> None:
    two = ("      - {name: embedding, dtype: array<float32>, vector: {dimensions: 3}}\n"
           "      - {name: other, dtype: array<float32>, vector: {dimensions: 3}}\n")
    with pytest.raises(SpecError) as error:
        load(tmp_path, "{dimensions: 3}", two)
    assert str(error.value).startswith(f"{F}:9: ")
    assert "features 'embedding' and 'other' both have a vector index; a feature view has at most one" in str(error.value)
