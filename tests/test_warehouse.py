"""Warehouse connections: profile settings, clear errors when the warehouse is not there."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from featurehouse.dbt_profile import DbtTarget
from featurehouse.errors import WarehouseError
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
