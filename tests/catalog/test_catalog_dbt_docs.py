"""`dbt docs generate` on the example repo: features with description, owner and tags, and lineage.

One dbt project for the module (seed, run, docs generate take ~15 s together).
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.cli.example import write_example_data
from support.repos import PACKAGE_ROOT, run_dbt, write_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """The example repo's specs in a throwaway dbt project, built and documented."""
    root = write_repo(tmp_path_factory.mktemp("docs") / "repo", {})
    for spec in (PACKAGE_ROOT / "feature_specs").glob("*.yml"):
        shutil.copy(spec, root / "feature_specs" / spec.name)
    shutil.copytree(PACKAGE_ROOT / "models" / "example", root / "models" / "example")  # documents.yml reads it
    write_example_data(root / "seeds")
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 0, result.output
    run_dbt(root, "seed")
    run_dbt(root, "run")
    run_dbt(root, "docs", "generate")
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    catalog = json.loads((root / "target" / "catalog.json").read_text())
    return manifest, catalog


def test_features_have_descriptions_dtypes_owner_and_tags(docs: tuple[dict, dict]) -> None:
    manifest, _ = docs
    model = manifest["nodes"]["model.test_repo.fv_driver_hourly_stats"]
    assert model["description"] == "Hourly conversion, acceptance and trip statistics per driver."
    assert model["meta"]["owner"] == "ml-platform@example.com"
    assert model["meta"]["featurehouse"]["tags"] == {"team": "driver_performance"}
    assert model["meta"]["featurehouse"]["ttl"] == "1d"
    # spec tags are dbt tags too: listed in the docs and selectable with -s tag:team:driver_performance
    assert model["tags"] == ["team:driver_performance"]
    conv_rate = model["columns"]["conv_rate"]
    assert conv_rate["description"] == "Share of offers the driver converted in the hour."
    assert conv_rate["meta"]["dtype"] == "float32"
    profile = manifest["nodes"]["model.test_repo.fv_customer_profile"]
    assert profile["meta"]["owner"] == "growth@example.com"
    assert set(profile["columns"]) >= {"current_balance", "avg_passenger_count", "lifetime_trip_count"}
    training = manifest["nodes"]["model.test_repo.ts_driver_training"]
    assert training["meta"]["featurehouse"]["features"] == "driver_activity"


def test_lineage_runs_from_sources_through_feature_views_to_training_sets(docs: tuple[dict, dict]) -> None:
    manifest, _ = docs
    parents = manifest["parent_map"]
    assert parents["model.test_repo.fv_driver_hourly_stats"] == ["seed.test_repo.raw_driver_stats"]
    assert parents["model.test_repo.fv_customer_profile"] == ["seed.test_repo.raw_customer_profile"]
    assert sorted(parents["model.test_repo.ts_driver_training"]) == [
        "model.test_repo.fv_customer_profile", "model.test_repo.fv_driver_hourly_stats",
        "seed.test_repo.driver_labels"]
    # a feature service is an exposure (type ml) downstream of the views it reads
    exposure = manifest["exposures"]["exposure.test_repo.driver_activity"]
    assert exposure["type"] == "ml" and exposure["owner"]["email"] == "ml-platform@example.com"
    assert exposure["tags"] == ["model:ride_ranking"]
    assert sorted(exposure["depends_on"]["nodes"]) == [
        "model.test_repo.fv_customer_profile", "model.test_repo.fv_driver_hourly_stats"]


def test_catalog_has_the_built_feature_tables(docs: tuple[dict, dict]) -> None:
    _, catalog = docs
    table = catalog["nodes"]["model.test_repo.fv_driver_hourly_stats"]
    assert {"driver_id", "event_timestamp", "created_timestamp", "conv_rate", "acc_rate"} <= set(table["columns"])
    assert "model.test_repo.ts_driver_training" in catalog["nodes"]
