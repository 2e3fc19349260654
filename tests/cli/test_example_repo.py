"""The example repo at the root builds on DuckDB and on Postgres and gives the same training set."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from support.repos import PACKAGE_ROOT, postgres_output, run_dbt

NOW = datetime(2026, 11, 27, 12, 0)


def _copy_example(root: Path, postgres_url: str, schema: str) -> Path:
    root.mkdir()
    for name in ("featurehouse.yml", "dbt_project.yml"):
        shutil.copy(PACKAGE_ROOT / name, root / name)
    for folder in ("feature_specs", "macros", "models/example"):  # models/example: documents.yml reads it
        shutil.copytree(PACKAGE_ROOT / folder, root / folder)
    # the example's own profile name: its dbt_project.yml builds its models only under it
    (root / "profiles.yml").write_text(
        "featurehouse:\n  target: dev\n  outputs:\n"
        "    dev: {type: duckdb, path: data/warehouse.duckdb, threads: 1}\n"
        + postgres_output(postgres_url, schema)
    )
    from featurehouse.cli.example import write_example_data

    write_example_data(root / "seeds", now=NOW)
    return root


def _training_set(root: Path, target: str) -> pd.DataFrame:
    from featurehouse import FeatureStore
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    dialect = "duckdb" if target == "dev" else "postgres"
    compiler.write(root / repo.config.models_dir, compiler.compile_repo(repo, dialect))
    run_dbt(root, "build", target=target)
    labels = pd.read_csv(root / "seeds" / "driver_labels.csv", parse_dates=["event_timestamp"])
    return FeatureStore(root, target=target).get_historical_features(labels, "driver_activity").to_df()


@pytest.mark.postgres
def test_example_gives_the_same_training_set_on_duckdb_and_postgres(tmp_path, postgres_url, postgres_schema):
    duck = _training_set(_copy_example(tmp_path / "duck", postgres_url, postgres_schema), "dev")
    pg = _training_set(_copy_example(tmp_path / "pg", postgres_url, postgres_schema), "pg")
    pd.testing.assert_frame_equal(duck, pg)
    assert len(duck) == 1000
    # the example is built to exercise the ttl: driver 1010 stopped two days before NOW
    stopped = duck[(duck.driver_id == 1010) & (duck.event_timestamp > pd.Timestamp(NOW) - pd.Timedelta(days=1))]
    assert len(stopped) > 0 and stopped["conv_rate"].isna().all()
    assert duck["conv_rate"].notna().sum() > 900

    # dbt build analyzes every Postgres feature view table (its post_hook): the macros pick their
    # plans from statistics, which a table just created has not got until autovacuum runs
    import psycopg

    with psycopg.connect(postgres_url) as con:
        analyzed = con.execute(
            "select relname, last_analyze is not null from pg_stat_user_tables where schemaname = %s "
            "and relname like 'fv\\_%%'",
            [postgres_schema],
        ).fetchall()
    assert analyzed and all(done for _, done in analyzed), analyzed
