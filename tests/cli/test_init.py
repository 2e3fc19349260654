"""`featurehouse init DIR` scaffolds a feature repo that compiles, `dbt build`s and serves training sets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from support.repos import run_dbt

CHECKOUT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("init") / "my-features"
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Created feature repo in {root}.")
    # exactly what the scaffold tells the user to run next
    run_dbt(root, "deps")
    run_dbt(root, "build")
    return root


def test_scaffold_is_a_dbt_project_using_this_package(repo: Path) -> None:
    for name in ("dbt_project.yml", "profiles.yml", "packages.yml", "featurehouse.yml", ".gitignore",
                 "feature_specs/drivers.yml", "seeds/raw_driver_stats.csv", "models/featurehouse/schema.yml",
                 "models/example/documents_embedded.sql"):
        assert (repo / name).is_file(), name
    assert "name: my_features\n" in (repo / "dbt_project.yml").read_text()
    # the macros travel with the repo (git clone, then dbt deps): no path to this checkout
    assert "  - local: vendor/featurehouse\n" in (repo / "packages.yml").read_text()
    assert CHECKOUT.as_posix() not in (repo / "packages.yml").read_text()
    for macro in (CHECKOUT / "macros").glob("*.sql"):
        assert (repo / "vendor" / "featurehouse" / "macros" / macro.name).read_bytes() == macro.read_bytes()
    assert (repo / "dbt_packages" / "featurehouse" / "macros" / "point_in_time_join.sql").is_file()


def test_scaffold_is_compiled_already(repo: Path) -> None:
    result = CliRunner().invoke(main, ["--repo", str(repo), "compile", "--check"])
    assert result.exit_code == 0, result.output


def test_dbt_build_makes_the_training_set(repo: Path) -> None:
    import duckdb

    # plain connect: dbt (in this process) holds the file open, and DuckDB wants one configuration per file
    con = duckdb.connect(str(repo / "data" / "warehouse.duckdb"))
    try:
        count, with_features = con.execute(
            "SELECT count(*), count(conv_rate) FROM main.ts_driver_training").fetchall()[0]
    finally:
        con.close()
    assert count == 1000  # every label row of seeds/driver_labels.csv, once
    assert 0 < with_features < count  # driver 1010's features expire, the others are found


def test_get_historical_features_works_in_the_scaffold(repo: Path) -> None:
    import pandas as pd

    from featurehouse import FeatureStore

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    entity_df = pd.DataFrame({
        "driver_id": [1001, 1010, 9999],
        "customer_id": [2001, 2002, 2003],
        "event_timestamp": [now - timedelta(minutes=30), now - timedelta(minutes=30), now],
        "label": [1, 0, 1],
    })
    df = FeatureStore(repo_path=str(repo)).get_historical_features(
        entity_df=entity_df, features="driver_activity").to_df()
    assert list(df["driver_id"]) == [1001, 1010, 9999]
    assert list(df["label"]) == [1, 0, 1]
    assert {"conv_rate", "acc_rate", "avg_daily_trips", "current_balance"} <= set(df.columns)
    assert df["conv_rate"].notna().tolist() == [True, False, False]  # 1010 stopped 2 days ago; ttl is 1d
    assert df["current_balance"].notna().tolist() == [True, True, True]  # every customer has a recent profile


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path} is not empty; featurehouse init only writes into a new or empty folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_init_writes_into_an_empty_folder_and_names_the_project(tmp_path: Path) -> None:
    target = tmp_path / "2024 features"
    target.mkdir()
    result = CliRunner().invoke(main, ["init", str(target), "--name", "rides"])
    assert result.exit_code == 0, result.output
    assert "name: rides\n" in (target / "dbt_project.yml").read_text()
    assert "project: rides\n" in (target / "featurehouse.yml").read_text()


def test_init_derives_an_identifier_from_the_folder_name(tmp_path: Path) -> None:
    target = tmp_path / "2024 ride-features"
    result = CliRunner().invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "project: ride_features\n" in (target / "featurehouse.yml").read_text()
