"""The core commands: `compile` (dialect from the dbt target), `example-data`, the committed example."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from support.driver_stats import MINIMAL_SPECS
from support.repos import write_repo

CHECKOUT = Path(__file__).resolve().parent.parent.parent
SPEC = MINIMAL_SPECS


def test_committed_example_models_are_fresh() -> None:
    """models/featurehouse/ at the root is what `featurehouse compile` writes for the example specs."""
    result = CliRunner().invoke(main, ["--repo", str(CHECKOUT), "--target", "dev", "compile", "--check"])
    assert result.exit_code == 0, result.output


def test_compile_uses_the_dialect_of_the_dbt_target(tmp_path: Path) -> None:
    # no connection is made: compile only reads the target's type
    root = write_repo(tmp_path, {"stats.yml": SPEC}, postgres_url="postgresql://postgres@127.0.0.1:5432/test",
                      target="pg")
    model = root / "models" / "featurehouse" / "fv_driver_stats.sql"
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Compiled 1 feature view(s) and 0 training set(s) for postgres: ")
    assert 'CAST("conv_rate" AS DOUBLE PRECISION)' in model.read_text()
    result = CliRunner().invoke(main, ["--repo", str(root), "--target", "dev", "compile"])
    assert result.exit_code == 0, result.output
    assert 'CAST("conv_rate" AS DOUBLE)' in model.read_text()
    # --check compares against the target it is given
    assert CliRunner().invoke(main, ["--repo", str(root), "--target", "dev", "compile", "--check"]).exit_code == 0
    assert CliRunner().invoke(main, ["--repo", str(root), "--target", "pg", "compile", "--check"]).exit_code == 1


def test_compile_reports_what_it_did(tmp_path: Path) -> None:
    root = write_repo(tmp_path, {"stats.yml": SPEC})
    first = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert again.stdout.startswith("Compiled 1 feature view(s) and 0 training set(s) for duckdb: 0 written, 0 removed, ")


def test_compile_for_an_unknown_dialect_or_target_is_one_line(tmp_path: Path) -> None:
    root = write_repo(tmp_path, {"stats.yml": SPEC})
    result = CliRunner().invoke(main, ["--repo", str(root), "compile", "--dialect", "postgre"])
    assert result.exit_code == 1
    assert result.output == ("Error: cannot compile for the SQL dialect 'postgre': Unknown dialect 'postgre'. "
                             "Did you mean postgres?\n")
    # a target asked for by name must exist: compiling for DuckDB instead would write the wrong models
    result = CliRunner().invoke(main, ["--repo", str(root), "--target", "pgg", "compile"])
    assert result.exit_code == 1
    assert result.output == "Error: profile 'test_repo' has no target 'pgg'\n"
    assert not (root / "models" / "featurehouse").exists()


def test_compile_finds_the_repo_from_a_subfolder(tmp_path: Path) -> None:
    root = write_repo(tmp_path, {"stats.yml": SPEC})
    result = CliRunner().invoke(main, ["--repo", str(root / "feature_specs"), "compile"])
    assert result.exit_code == 0, result.output
    assert (root / "models" / "featurehouse" / "fv_driver_stats.sql").is_file()


def test_example_data_writes_the_seeds(tmp_path: Path) -> None:
    shutil.copytree(CHECKOUT / "feature_specs", tmp_path / "feature_specs")
    shutil.copy(CHECKOUT / "featurehouse.yml", tmp_path / "featurehouse.yml")
    result = CliRunner().invoke(main, ["--repo", str(tmp_path), "example-data", "--seed", "3"])
    assert result.exit_code == 0, result.output
    written = {}
    for name in ("raw_driver_stats.csv", "raw_customer_profile.csv", "driver_labels.csv"):
        with (tmp_path / "seeds" / name).open() as handle:
            written[name] = list(csv.DictReader(handle))
        assert f"rows to seeds/{name}" in result.stdout
    assert len(written["driver_labels.csv"]) == 1000
    assert list(written["raw_driver_stats.csv"][0]) == [
        "driver_id", "event_timestamp", "created", "conv_rate", "acc_rate", "avg_daily_trips"]
    # the late corrections that make created-time tie-breaking matter
    keys = [(r["driver_id"], r["event_timestamp"]) for r in written["raw_driver_stats.csv"]]
    assert len(set(keys)) < len(keys)


def test_cli_starts_without_heavy_imports() -> None:
    code = ("import sys, featurehouse.cli.app; heavy = {'duckdb', 'pandas', 'pyarrow', 'dbt', 'psycopg', 'redis'}; "
            "print(sorted(heavy & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_compile_in_a_dbt_project_without_a_profile_does_not_fall_back_to_duckdb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI without profiles.yml: checking (or rewriting) a Postgres project's models as DuckDB would mislead
    root = write_repo(tmp_path / "repo", {"stats.yml": SPEC}, postgres_url="postgresql://postgres@127.0.0.1:5432/test",
                      target="pg")
    assert CliRunner().invoke(main, ["--repo", str(root), "compile"]).exit_code == 0
    (root / "profiles.yml").rename(tmp_path / "profiles.yml")
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model = root / "models" / "featurehouse" / "fv_driver_stats.sql"
    before = model.read_text()
    for args in (["compile"], ["compile", "--check"]):
        result = CliRunner().invoke(main, ["--repo", str(root), *args])
        assert result.exit_code == 1
        assert result.output.startswith("Error: no profiles.yml found")
        assert result.output.endswith("; or name the SQL dialect to compile for, e.g. --dialect postgres\n")
    assert model.read_text() == before
    assert CliRunner().invoke(main, ["--repo", str(root), "compile", "--check", "--dialect", "postgres"]).exit_code == 0
    # the profile found through DBT_PROFILES_DIR, as dbt finds it
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    assert CliRunner().invoke(main, ["--repo", str(root), "compile", "--check"]).exit_code == 0


def test_compile_refuses_a_models_dir_that_dbt_does_not_build(tmp_path: Path) -> None:
    # an existing project whose models live elsewhere: dbt build would silently skip models/featurehouse
    root = write_repo(tmp_path, {"stats.yml": SPEC})
    project = root / "dbt_project.yml"
    project.write_text(project.read_text().replace('model-paths: ["models"]', 'model-paths: ["transform"]'))
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: featurehouse.yml: models_dir 'models/featurehouse' is not under the model-paths of dbt_project.yml "
        "(transform), so dbt would not build the feature views; set models_dir: transform/featurehouse\n")
    assert not (root / "models" / "featurehouse").exists()
    config = root / "featurehouse.yml"
    config.write_text(config.read_text() + "models_dir: transform/featurehouse\n")
    assert CliRunner().invoke(main, ["--repo", str(root), "compile"]).exit_code == 0
    assert (root / "transform" / "featurehouse" / "fv_driver_stats.sql").is_file()


def test_a_missing_optional_dependency_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `pip install featurehouse` without [postgres] / [server]: one line saying what to install
    root = write_repo(tmp_path, {"stats.yml": SPEC})
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "featurehouse.server", raising=False)
    result = CliRunner().invoke(main, ["--repo", str(root), "serve"])
    assert result.exit_code == 1
    assert result.output == ("Error: this needs the Python package fastapi, which is not installed; "
                             "pip install 'featurehouse[server]'\n")
