"""A misspelt column is a SpecError at compile time wherever the source's columns can be known.

Known: a file (read), a seed's CSV, dbt's catalog.json (after `dbt docs generate`), the
source's declared `columns:`, and the columns schema.yml documents for a ref'd model or a
dbt source (only some, so only near misses are reported). Unknown (a `table:` with nothing
declared, a ref with no manifest): compile trusts the spec, as before.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from featurehouse.compile import compiler
from featurehouse.errors import SpecError
from featurehouse.spec.repo import load_repo
from support.repos import run_dbt, write_repo

ORDERS_CSV = """\
order_id,customer_id,ordered_at,loaded_at,amount,discount
1,10,2024-01-01 10:00:00,2024-01-01 10:05:00,12.5,0
2,10,2024-01-02 10:00:00,2024-01-02 10:05:00,20.0,1.5
3,11,2024-01-02 11:00:00,2024-01-02 11:05:00,7.25,0
"""
# documents some of stg_orders' columns, as schema.yml files often do (discount is left out)
STAGING_YML = """\
version: 2
models:
  - name: stg_orders
    columns:
      - {name: order_id}
      - {name: customer_id}
      - {name: ordered_at}
      - {name: loaded_at}
      - {name: amount}
sources:
  - name: shop
    schema: main
    tables:
      - name: orders
        columns:
          - {name: customer_id}
          - {name: ordered_at}
          - {name: amount}
"""

F = "feature_specs/specs.yml"


def spec(location: str, *, timestamp: str = "ordered_at", extra: str = "", features: str = "amount, discount",
         view_extra: str = "") -> str:
    """A customer entity, one source (line 4) and one view (line 9) reading ``features``."""
    schema = "".join(f"      - {{name: {f.strip()}, dtype: float64}}\n" for f in features.split(",") if f.strip())
    return f"""\
entities:
  - {{name: customer, join_keys: [customer_id], value_type: int64}}
sources:
  - name: orders
    {location}
    timestamp_field: {timestamp}
{extra}feature_views:
  - name: spend
    entities: [customer]
    source: orders
{"    schema:" + chr(10) + schema if schema else ""}{view_extra}"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A dbt project with a seed, a staging model over it and a documented dbt source; built, with
    a catalog.json set aside (restored by the catalog tests)."""
    root = write_repo(tmp_path_factory.mktemp("columns"), {"specs.yml": spec("ref: stg_orders")})
    (root / "seeds").mkdir()
    (root / "seeds" / "raw_orders.csv").write_text(ORDERS_CSV)
    staging = root / "models" / "staging"
    staging.mkdir(parents=True)
    (staging / "stg_orders.sql").write_text("select * from {{ ref('raw_orders') }}\n")
    (staging / "schema.yml").write_text(STAGING_YML)
    run_dbt(root, "build", "--quiet")
    run_dbt(root, "docs", "generate", "--quiet")
    (root / "target" / "catalog.json").rename(root / "target" / "catalog.json.saved")
    return root


def compile_spec(root: Path, text: str) -> dict[str, str]:
    (root / "feature_specs" / "specs.yml").write_text(text)
    return compiler.compile_repo(load_repo(root), "duckdb")


def compile_error(root: Path, text: str) -> str:
    with pytest.raises(SpecError) as caught:
        compile_spec(root, text)
    return str(caught.value)


# ---- a ref'd model: the columns schema.yml documents (some of them) ----------------------------------
def test_a_misspelt_feature_over_a_documented_ref_is_caught(project: Path) -> None:
    assert compile_error(project, spec("ref: stg_orders", features="amout")) == (
        f"{F}:12: feature view 'spend', feature 'amout': column 'amout' is not in the columns schema.yml documents "
        "for model 'stg_orders' (did you mean 'amount'?); map it with field_mapping on source 'orders' or give "
        "an expression:")


@pytest.mark.parametrize(("text", "message"), [
    (spec("ref: stg_orders", timestamp="ordered_a"),
     f"{F}:6: source 'orders': timestamp_field: column 'ordered_a' is not in the columns schema.yml documents "
     "for model 'stg_orders' (did you mean 'ordered_at'?)"),
    (spec("ref: stg_orders", extra="    created_timestamp_column: loadd_at\n"),
     f"{F}:7: source 'orders': created_timestamp_column: column 'loadd_at' is not in the columns schema.yml "
     "documents for model 'stg_orders' (did you mean 'loaded_at'?)"),
    (spec("ref: stg_orders", extra="    field_mapping: {amoun: spent}\n", features="spent"),
     f"{F}:7: source 'orders': field_mapping: column 'amoun' is not in the columns schema.yml documents for "
     "model 'stg_orders' (did you mean 'amount'?)"),
    (spec("source: shop.orders", features="amout"),
     f"{F}:12: feature view 'spend', feature 'amout': column 'amout' is not in the columns schema.yml documents "
     "for dbt source 'shop.orders' (did you mean 'amount'?); map it with field_mapping on source 'orders' or "
     "give an expression:"),
])
def test_every_column_of_a_documented_ref_or_dbt_source_is_checked(project: Path, text: str, message: str) -> None:
    assert compile_error(project, text) == message


def test_an_undocumented_column_of_a_ref_is_trusted(project: Path) -> None:
    """schema.yml documents only some columns: discount is real, and far from every documented name."""
    files = compile_spec(project, spec("ref: stg_orders", features="amount, discount"))
    assert '"discount"' in files["fv_spend.sql"]


def test_a_misspelt_join_key_is_caught(project: Path) -> None:
    text = spec("ref: stg_orders").replace("join_keys: [customer_id]", "join_keys: [customer_i]")
    assert compile_error(project, text) == (
        f"{F}:9: feature view 'spend': join key column 'customer_i' is not in the columns schema.yml documents "
        "for model 'stg_orders' (did you mean 'customer_id'?); map it with field_mapping on source 'orders'")


# ---- complete knowledge: a seed's CSV, dbt's catalog.json ------------------------------------------------
def test_a_seed_is_known_by_its_csv_header(project: Path) -> None:
    assert compile_error(project, spec("ref: raw_orders", features="amount, discont")) == (
        f"{F}:13: feature view 'spend', feature 'discont': column 'discont' is not in seed 'raw_orders' "
        "(seeds/raw_orders.csv) (did you mean 'discount'?); map it with field_mapping on source 'orders' or give "
        "an expression:")
    # complete: a name far from every column is reported too, and an aggregation column is checked
    assert "column 'tip' is not in seed 'raw_orders'" in compile_error(project, spec("ref: raw_orders", features="tip"))
    aggregation = spec("ref: raw_orders", features="", view_extra="    aggregations:\n"
                                                                   "      - {column: amout, function: sum, window: 1d}\n")
    assert compile_error(project, aggregation) == (
        f"{F}:12: feature view 'spend': aggregation column 'amout' is not in seed 'raw_orders' "
        "(seeds/raw_orders.csv) (did you mean 'amount'?)")


@pytest.fixture
def catalog(project: Path):
    saved = project / "target" / "catalog.json.saved"
    shutil.copy(saved, project / "target" / "catalog.json")
    yield project / "target" / "catalog.json"
    (project / "target" / "catalog.json").unlink()


def test_the_catalog_knows_every_column_of_a_ref(project: Path, catalog: Path) -> None:
    message = compile_error(project, spec("ref: stg_orders", features="amount, tip"))
    assert message.startswith(f"{F}:13: feature view 'spend', feature 'tip': column 'tip' is not in model "
                              "'stg_orders' (target/catalog.json; run 'dbt docs generate' if it changed since)")
    assert '"discount"' in compile_spec(project, spec("ref: stg_orders"))["fv_spend.sql"]


def test_a_catalog_older_than_the_model_is_not_trusted(project: Path, catalog: Path) -> None:
    model = project / "models" / "staging" / "stg_orders.sql"
    later = catalog.stat().st_mtime_ns + 5_000_000_000
    os.utime(model, ns=(later, later))
    # the model may have gained 'tip' since: only the documented names count, and tip is far from them
    assert '"tip"' in compile_spec(project, spec("ref: stg_orders", features="amount, tip"))["fv_spend.sql"]


@pytest.mark.parametrize("content", ["{", "[]", '{"nodes": 5}'])
def test_a_broken_catalog_falls_back_to_the_documented_columns(project: Path, catalog: Path, content: str) -> None:
    catalog.write_text(content)
    assert "(did you mean 'amount'?)" in compile_error(project, spec("ref: stg_orders", features="amout"))


# ---- declared columns: ----------------------------------------------------------------------------------
DECLARED = "    columns: [customer_id, ordered_at, loaded_at, amount, discount]\n"


@pytest.mark.parametrize(("text", "message"), [
    (spec("table: raw.orders", extra=DECLARED, features="amout"),
     f"{F}:13: feature view 'spend', feature 'amout': column 'amout' is not in the columns: of source 'orders' "
     "(did you mean 'amount'?); list it under the source's columns: if the source has it, map it with "
     "field_mapping on source 'orders', or give an expression:"),
    (spec("table: raw.orders", extra=DECLARED, timestamp="ordered_a"),
     f"{F}:6: source 'orders': timestamp_field: column 'ordered_a' is not in the columns: of source 'orders' "
     "(did you mean 'ordered_at'?)"),
    (spec("table: raw.orders", extra=DECLARED.replace("customer_id, ", "")),
     f"{F}:10: feature view 'spend': join key column 'customer_id' is not in the columns: of source 'orders'; "
     "list it under the source's columns: if the source has it, or map it with field_mapping on source 'orders'"),
])
def test_declared_columns_are_checked(project: Path, text: str, message: str) -> None:
    assert compile_error(project, text) == message


def test_declared_columns_need_not_repeat_the_timestamp_and_mapped_columns(project: Path) -> None:
    text = spec("table: raw.orders", timestamp="event_time",
                extra="    field_mapping: {spent_total: spent}\n    columns: [customer_id, amount]\n",
                features="amount, spent")
    assert '"spent_total"' in compile_spec(project, text)["fv_spend.sql"]


# ---- nothing known: compile trusts the spec, as before --------------------------------------------------
def test_a_table_with_nothing_declared_compiles_as_before(project: Path) -> None:
    assert '"amout"' in compile_spec(project, spec("table: raw.orders", features="amout"))["fv_spend.sql"]


@pytest.mark.parametrize("content", ["", "{\"nodes\": {", "null"])
def test_a_ref_without_a_readable_manifest_compiles_as_before(project: Path, content: str) -> None:
    manifest = project / "target" / "manifest.json"
    saved = manifest.read_bytes()
    try:
        manifest.write_text(content)
        assert '"amout"' in compile_spec(project, spec("ref: stg_orders", features="amout"))["fv_spend.sql"]
    finally:
        manifest.write_bytes(saved)
