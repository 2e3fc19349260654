"""Warehouse connections: profile settings, clear errors when the warehouse is not there."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from featurehouse.dbt.profile import DbtTarget, load_target
from featurehouse.errors import ConfigError, WarehouseError
from featurehouse.warehouse import connect


def _duckdb_target(path: Path, settings: dict | None = None) -> DbtTarget:
    config = {"type": "duckdb", "path": str(path)}
    if settings is not None:
        config["settings"] = settings
    return DbtTarget("p", "p", "dev", path.parent, config)


def test_duckdb_applies_the_profiles_resource_settings(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    warehouse = connect(_duckdb_target(tmp_path / "w.duckdb", {"memory_limit": "1GB", "threads": 1,
                                                               "s3_region": "eu-west-1"}), tmp_path)
    try:
        limit, threads, progress = warehouse.arrow(
            "select current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('enable_progress_bar')"
        ).to_pylist()[0].values()
    finally:
        warehouse.close()
    assert limit == "953.6 MiB"  # DuckDB reports 1GB (10^9 bytes) in MiB
    assert int(threads) == 1
    assert progress is False or str(progress).lower() == "false"


def test_missing_duckdb_warehouse_says_to_run_dbt_build(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"does not exist yet; run 'dbt build' first"):
        connect(_duckdb_target(tmp_path / "missing.duckdb"), tmp_path)


def test_unreachable_postgres_is_one_sentence(tmp_path: Path) -> None:
    target = DbtTarget("p", "p", "pg", tmp_path, {"type": "postgres", "host": "127.0.0.1", "port": 1,
                                                   "user": "postgres", "dbname": "test", "connect_timeout": 2})
    with pytest.raises(WarehouseError, match=r"^cannot connect to the Postgres warehouse: ") as error:
        connect(target, tmp_path)
    assert "\n" not in str(error.value)


def test_postgres_without_psycopg_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an existing dbt-postgres project has psycopg2, not the psycopg 3 featurehouse reads with
    monkeypatch.setitem(sys.modules, "psycopg", None)
    target = DbtTarget("p", "p", "dev", tmp_path, {"type": "postgres", "host": "127.0.0.1", "user": "postgres"})
    with pytest.raises(WarehouseError) as raised:
        connect(target, tmp_path)
    assert str(raised.value) == ("the dbt target 'dev' is Postgres, which featurehouse reads with psycopg 3: "
                                 "pip install 'featurehouse[postgres]'")


def test_profiles_may_use_dbts_type_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dbt's documented way to put a number from the environment into profiles.yml
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    profile = ("p:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      host: 127.0.0.1\n"
               "      port: \"{{ env_var('FH_TEST_PGPORT') | as_number }}\"\n"
               "      password: \"{{ env_var('FH_TEST_PGPASS', '') | as_text }}\"\n"
               "      threads: \"{{ 4 | as_native }}\"\n")
    (tmp_path / "profiles.yml").write_text(profile)
    monkeypatch.setenv("FH_TEST_PGPORT", "6543")
    monkeypatch.delenv("FH_TEST_PGPASS", raising=False)
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    config = load_target(tmp_path).config
    assert (config["port"], config["password"], config["threads"]) == (6543, "", 4)
    # a filter dbt does not have either is one sentence, not a Jinja traceback
    (tmp_path / "profiles.yml").write_text(profile.replace("as_number", "as_numbr"))
    with pytest.raises(ConfigError) as raised:
        load_target(tmp_path)
    assert str(raised.value) == ("profiles.yml: cannot render \"{{ env_var('FH_TEST_PGPORT') | as_numbr }}\": "
                                 "No filter named 'as_numbr'.")
