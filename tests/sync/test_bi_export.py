"""bi_export: BI tools read a copy of the DuckDB warehouse that sync refreshes, so they never block `dbt run`."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from featurehouse.errors import ConfigError, WarehouseError
from support.repos import reset_dbt_duckdb, run_dbt
from test_manifest_relations import _cli, _write_placed_repo

VIEW_MODEL = "{{ config(materialized='view') }}\nselect driver_id, trips from {{ ref('fv_stats') }}\n"
COPY = Path("data") / "bi" / "warehouse.duckdb"


@pytest.fixture
def repo(tmp_path) -> Path:
    root = _write_placed_repo(tmp_path / "repo", datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0))
    with (root / "featurehouse.yml").open("a") as handle:
        handle.write("bi_export: data/bi\n")
    (root / "models" / "reporting").mkdir(parents=True)
    (root / "models" / "reporting" / "trips_by_driver.sql").write_text(VIEW_MODEL)
    assert _cli(root, None, "compile").exit_code == 0
    run_dbt(root, "build", "--quiet")
    return root


def _rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(con.execute(sql).fetchall())
    finally:
        con.close()


def _hold_open(path: Path) -> subprocess.Popen:
    """Another process (a BI tool) holding ``path`` open read-only, until killed."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('select count(*) from main__features.stats_latest').fetchone()[0], flush=True); "
            "time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "7"
    return holder


def test_sync_keeps_a_copy_bi_can_hold_open_while_dbt_builds(repo: Path) -> None:
    synced = _cli(repo, None, "sync")
    assert synced.exit_code == 0, synced.output
    assert f"bi_export {repo / COPY}: refreshed" in synced.output
    copy = repo / COPY
    reset_dbt_duckdb()  # dbt's in-process connection would keep the warehouse from opening read-only
    # every table and view, at the place dbt put it; views that name the database resolve in the copy
    for sql in ('select * from main__features.stats_latest', 'select * from main__features.fv_stats',
                'select * from main.trips_by_driver', 'select * from main__raw.raw_stats'):
        assert _rows(copy, sql) == _rows(repo / "data" / "warehouse.duckdb", sql)

    assert "bi_export" in _cli(repo, None, "sync").output and ": up to date" in _cli(repo, None, "sync").output

    holder = _hold_open(copy)
    try:
        seeds = repo / "seeds" / "raw_stats.csv"
        recent = datetime.now(timezone.utc) - timedelta(minutes=30)
        seeds.write_text(seeds.read_text() + f"99,{recent:%Y-%m-%d %H:%M:%S},1,0.5\n")
        run_dbt(repo, "build", "--quiet")  # not blocked: the BI tool holds the copy, not the warehouse
        synced = _cli(repo, None, "sync")
        assert synced.exit_code == 0 and ": refreshed" in synced.output, synced.output
    finally:
        holder.kill()
        holder.wait()
    assert _rows(copy, "select count(*) from main__features.stats_latest") == [(8,)]
    assert list(copy.parent.iterdir()) == [copy]  # no temporary left behind


def test_a_failed_copy_keeps_the_previous_one_whole(repo: Path, monkeypatch) -> None:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync
    from featurehouse.warehouse import DuckDBWarehouse

    sync(FeatureStore(repo))
    copy = repo / COPY
    before = copy.read_bytes()
    real = DuckDBWarehouse.copy_database_to

    def fail_halfway(self, path):
        real(self, path)
        raise WarehouseError("disk full")

    monkeypatch.setattr(DuckDBWarehouse, "copy_database_to", fail_halfway)
    run_dbt(repo, "build", "--quiet")
    with pytest.raises(WarehouseError, match=r"cannot write the bi_export copy .*warehouse.duckdb: disk full"):
        sync(FeatureStore(repo))
    assert copy.read_bytes() == before
    assert list(copy.parent.iterdir()) == [copy]


def test_bi_export_may_not_be_the_warehouse_folder(repo: Path) -> None:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync

    config = repo / "featurehouse.yml"
    config.write_text(config.read_text().replace("bi_export: data/bi", "bi_export: data"))
    with pytest.raises(ConfigError, match="bi_export 'data' is the warehouse's own folder"):
        sync(FeatureStore(repo))
    result = _cli(repo, None, "sync")
    assert result.exit_code == 1 and result.output.startswith("Error: featurehouse.yml: bi_export 'data' is")


def _tiny_warehouse(root: Path):
    from featurehouse.dbt.profile import DbtTarget
    from featurehouse.warehouse import DuckDBWarehouse

    (root / "data").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.execute("create table t as select 1 as a")
    con.close()
    target = DbtTarget("p", "p", "dev", root, {"type": "duckdb", "path": "data/warehouse.duckdb"})
    return DuckDBWarehouse(target, root)


def test_a_bi_export_folder_that_is_a_file_is_one_clear_error(tmp_path) -> None:
    from featurehouse.sync.bi_export import refresh

    warehouse = _tiny_warehouse(tmp_path)
    (tmp_path / "exports").write_text("not a folder")
    try:
        with pytest.raises(ConfigError, match=r"^featurehouse.yml: cannot create the bi_export folder .*exports"):
            refresh(warehouse, tmp_path, "exports")
        assert refresh(warehouse, tmp_path, "bi").state == "refreshed"
        assert refresh(warehouse, tmp_path, "bi").state == "up to date"
        assert refresh(warehouse, tmp_path, "bi", force=True).state == "refreshed"
    finally:
        warehouse.close()
    assert _rows(tmp_path / "bi" / "warehouse.duckdb", "select a from t") == [(1,)]


def test_a_postgres_target_needs_no_copy(tmp_path) -> None:
    from featurehouse.sync.bi_export import refresh
    from featurehouse.dbt.profile import DbtTarget
    from featurehouse.warehouse import Warehouse

    warehouse = Warehouse()
    warehouse.target = DbtTarget("p", "p", "pg", tmp_path, {"type": "postgres"})
    result = refresh(warehouse, tmp_path, "bi")
    assert result.summary() == "bi_export bi: skipped (the target is postgres: BI tools read it directly)"
    assert not (tmp_path / "bi").exists()
