"""The committed dbt integration project (tests/dbt_project/) builds with featurehouse installed
as a dbt package, the way a user's project installs it (packages.yml `local:`, then `dbt deps`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from support.repos import run_dbt

CHECKOUT = Path(__file__).resolve().parent.parent.parent
PROJECT = CHECKOUT / "tests" / "dbt_project"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dbt_project") / "project"
    # leftovers of a run inside the checkout (build output, generated models) are not part of the project
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "featurehouse"))
    packages = root / "packages.yml"
    assert "local: ../../" in packages.read_text()
    # the relative path only resolves inside the checkout
    packages.write_text(packages.read_text().replace("local: ../../", f"local: {CHECKOUT.as_posix()}"))
    result = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert result.exit_code == 0, result.output
    run_dbt(root, "deps")
    run_dbt(root, "build")
    return root


def test_package_is_installed_by_dbt_deps(built: Path) -> None:
    assert (built / "dbt_packages" / "featurehouse" / "macros" / "point_in_time_join.sql").is_file()


def test_training_set_has_every_spine_row_and_known_values(built: Path) -> None:
    import duckdb

    # plain connect: dbt (in this process) holds the file open, and DuckDB wants one configuration per file
    con = duckdb.connect(str(built / "target" / "integration_tests.duckdb"))
    try:
        rows = con.execute(
            "SELECT request_id, driver_id, completed, conv_rate, trips_today, conv_per_trip "
            "FROM main.ts_driver_training ORDER BY request_id").fetchall()
    finally:
        con.close()
    assert len(rows) == 7
    # request 2 is exactly at 10:00, where two rows tie on event time: the later-created correction wins
    request_id, driver_id, completed, conv_rate, trips_today, conv_per_trip = rows[1]
    assert (request_id, driver_id, completed, trips_today) == (2, 1001, 0, 13)
    assert conv_rate == pytest.approx(0.35)
    assert conv_per_trip == pytest.approx(0.35 / 13)  # the expression conv_rate / trips
    # a driver without any rows keeps its spine row, with NULL features
    assert rows[5][1:] == (1003, 1, None, None, None)


def test_hand_written_point_in_time_test_passed(built: Path) -> None:
    """tests/dbt_project/tests/*.sql check every spine row against values worked out by hand."""
    results = json.loads((built / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in results}
    assert statuses["training_set_is_point_in_time"] == "pass"
    assert not {s for s in statuses.values() if s in ("error", "fail", "warn", "skipped")}, statuses


KEYWORD_SPECS = """\
entities:
  - {name: grp, join_keys: [group], value_type: int64}
  - {name: account, join_keys: [Account_ID], value_type: string}
sources:
  - name: src
    table: SCHEMA.src
    timestamp_field: event_timestamp
    field_mapping: {grp: group, account: Account_ID}
    columns: [grp, account, balance]
feature_views:
  - name: balances
    entities: [grp, account]
    source: src
    ttl: 1d
    schema: [{name: balance, dtype: float64}]
    online: true
"""


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_keyword_and_mixed_case_join_keys_build_test_rebuild_and_serve(tmp_path, warehouse, request):
    """dbt's not_null test and delete+insert write key names into SQL as given: they must be quoted."""
    from datetime import datetime, timedelta, timezone

    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync
    from support.repos import write_repo

    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    if warehouse == "postgres":
        import psycopg

        url, schema = request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")
        root = write_repo(tmp_path / "repo", {"specs.yml": KEYWORD_SPECS.replace("SCHEMA", schema)},
                          postgres_url=url, postgres_schema=schema, target="pg")

        def execute(sql: str, *params) -> None:
            with psycopg.connect(url, autocommit=True) as con:
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(sql, params or None)
    else:
        import duckdb

        root = write_repo(tmp_path / "repo", {"specs.yml": KEYWORD_SPECS.replace("SCHEMA", "main")})

        def execute(sql: str, *params) -> None:
            con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
            try:
                con.execute(sql.replace("%s", "?"), list(params))
            finally:
                con.close()

    def write(balance: float, age: timedelta) -> None:
        table = f'"{schema}".src' if warehouse == "postgres" else "main.src"
        execute(f"drop table if exists {table}")
        execute(f"create table {table} (grp bigint, account text, event_timestamp timestamp, balance double precision)")
        execute(f"insert into {table} values (1, 'a', %s, %s), (2, 'B', %s, %s)", now - age, balance, now - age, balance + 1)

    write(10.0, timedelta(hours=2))
    compiled = CliRunner().invoke(main, ["--repo", str(root), "compile"])
    assert compiled.exit_code == 0, compiled.output
    target = "pg" if warehouse == "postgres" else None
    run_dbt(root, "build", target=target)  # the not_null tests on "group" and "Account_ID" pass
    write(20.0, timedelta(hours=1))
    run_dbt(root, "build", target=target)  # the incremental online_balances: delete+insert on the keys
    store = FeatureStore(root, target=target)
    sync(store)
    values = store.get_online_features(["balances:balance"], {"group": [1, 2], "Account_ID": ["a", "B"]}).to_dict()
    assert values["balance"] == [20.0, 21.0]
