"""The core commands: `compile` (dialect from the dbt target), `example-data`, the committed example."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from featurehouse.cli import main
from repos import write_repo

CHECKOUT = Path(__file__).resolve().parent.parent
SPEC = """\
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, table: raw.stats, timestamp_field: event_timestamp}
feature_views:
  - name: driver_stats
    entities: [driver]
    source: stats
    schema:
      - {name: conv_rate, dtype: float64}
"""


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
    code = ("import sys, featurehouse.cli; heavy = {'duckdb', 'pandas', 'pyarrow', 'dbt', 'psycopg', 'redis'}; "
            "print(sorted(heavy & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
