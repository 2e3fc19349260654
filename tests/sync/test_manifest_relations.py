"""sync, check and online reads find the models where dbt put them (+schema, +alias, generate_schema_name).

End to end with dbt on DuckDB and Postgres, then the manifest rules without dbt: another
target's manifest, a project's own naming macro, a broken manifest, the cache.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import WarehouseError
from featurehouse.dbt.manifest import Relations, load, model_checksum
from support.repos import drop_postgres_schema, run_dbt, write_repo

SPECS = """\
entities:
  - {name: driver, join_keys: [driver_id], value_type: int64}
sources:
  - name: stats_source
    ref: raw_stats
    timestamp_field: event_timestamp
feature_views:
  - name: stats
    entities: [driver]
    source: stats_source
    schema:
      - {name: trips, dtype: int64}
      - {name: rate, dtype: float64}
    online: true
  - name: totals
    entities: [driver]
    source: stats_source
    aggregations:
      - {column: trips, function: sum, window: 1d}
    online: true
"""

# the featurehouse folder gets a custom schema, one model an alias, and the project's own
# generate_schema_name joins names with "__" (dbt's default joins with "_")
PLACEMENT = """
models:
  test_repo:
    featurehouse:
      +schema: features
      online_stats:
        +alias: stats_latest
seeds:
  test_repo:
    +schema: raw
"""
GENERATE_SCHEMA_NAME = """\
{% macro generate_schema_name(custom_schema_name, node) -%}
  {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ target.schema }}__{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
"""


def _write_placed_repo(root: Path, now: datetime, **repo_options) -> Path:
    write_repo(root, {"specs.yml": SPECS}, **repo_options)
    with (root / "dbt_project.yml").open("a") as handle:
        handle.write(PLACEMENT)
    (root / "macros").mkdir(exist_ok=True)
    (root / "macros" / "generate_schema_name.sql").write_text(GENERATE_SCHEMA_NAME)
    (root / "seeds").mkdir(exist_ok=True)
    lines = ["driver_id,event_timestamp,trips,rate"]
    for driver in range(1, 8):
        for hours in (3, 2, 1):
            moment = now - timedelta(hours=hours, minutes=driver)
            lines.append(f"{driver},{moment:%Y-%m-%d %H:%M:%S},{driver * 10 + hours},{driver / 10 + hours / 100}")
    (root / "seeds" / "raw_stats.csv").write_text("\n".join(lines) + "\n")
    return root


def _cli(root: Path, target: str | None, *args: str):
    return CliRunner().invoke(main, ["--repo", str(root), *(["--target", target] if target else []), *args])


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def placed(request, tmp_path):
    """A repo whose generated models dbt built into <schema>__features, one under an alias."""
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    if request.param == "postgres":
        url, schema = request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")
        root = _write_placed_repo(tmp_path / "repo", now, postgres_url=url, postgres_schema=schema, target="pg")
        target, request_schema = "pg", schema
    else:
        root = _write_placed_repo(tmp_path / "repo", now)
        target, request_schema = None, "main"
    compiled = _cli(root, target, "compile")
    assert compiled.exit_code == 0, compiled.output
    run_dbt(root, "build", "--quiet", target=target)
    yield root, target, request_schema
    if request.param == "postgres":
        for suffix in ("__features", "__raw"):
            drop_postgres_schema(request.getfixturevalue("postgres_url"), request_schema + suffix)


def test_sync_reads_online_and_check_follow_the_models_where_dbt_put_them(placed) -> None:
    from featurehouse.sdk.store import FeatureStore
    from featurehouse.sync import sync
    from featurehouse.online.check import audit

    root, target, schema = placed
    store = FeatureStore(root, target=target)
    warehouse = store._warehouse()
    try:
        relation = warehouse.relation("online_stats")
        # nothing at the old guess, <target schema>.online_stats: reading it was the defect
        with pytest.raises(WarehouseError):
            warehouse.arrow(f'select * from "{schema}"."online_stats"')
    finally:
        warehouse.close()
    assert relation.endswith(f'"{schema}__features"."stats_latest"')

    report = sync(store)
    assert {v.view: v.rows_read for v in report.views} == {"stats": 7, "totals": 7}
    assert report.warnings == []

    drivers = list(range(1, 8))
    online = store.get_online_features(["stats:trips", "stats:rate", "totals:trips_sum_1d"],
                                       [{"driver_id": d} for d in drivers]).to_dict()
    assert online["trips"] == [d * 10 + 1 for d in drivers]
    assert online["trips_sum_1d"] == [d * 30 + 6 for d in drivers]

    result = audit(store)
    assert result.differences == []
    assert [line.split(":")[0] for line in result.summaries] == ["stats", "totals"]


def test_a_model_compiled_after_the_last_build_is_named_stale(placed) -> None:
    root, target, _ = placed
    specs = root / "feature_specs" / "specs.yml"
    specs.write_text(specs.read_text().replace("{name: rate, dtype: float64}",
                                               "{name: rate, dtype: float64, expression: \"rate * 2\"}"))
    assert _cli(root, target, "compile").exit_code == 0

    synced = _cli(root, target, "sync")
    assert synced.exit_code == 0, synced.output
    assert ("warning: model fv_stats (models/featurehouse/fv_stats.sql) changed after the last dbt build "
            "(target/manifest.json of ") in synced.stderr
    assert "so its table is stale; run 'dbt build'" in synced.stderr
    assert "online_stats" not in synced.stderr  # its SQL did not change
    checked = _cli(root, target, "check")
    assert "stale build: model fv_stats" in checked.output

    run_dbt(root, "build", "--quiet", target=target)
    synced = _cli(root, target, "sync")
    assert synced.exit_code == 0 and "warning" not in synced.stderr, synced.stderr


# ---- the rules, on manifests written here (no dbt) ----------------------------------------------------
def _target(name: str = "dev", schema: str = "main", kind: str = "duckdb", **config) -> DbtTarget:
    base = {"type": kind, "schema": schema}
    base.update({"path": "data/warehouse.duckdb"} if kind == "duckdb" else {"dbname": "test"})
    base.update(config)
    return DbtTarget("test_repo", "test_repo", name, Path("."), base)


def _node(name: str, *, package: str = "test_repo", database: str = "warehouse", schema: str = "main",
          alias: str | None = None, config: dict | None = None, code: str = "select 1") -> dict:
    return {
        "unique_id": f"model.{package}.{name}", "resource_type": "model", "package_name": package, "name": name,
        "database": database, "schema": schema, "alias": alias or name, "config": config or {},
        "checksum": {"name": "sha256", "checksum": model_checksum(code)},
        "original_file_path": f"models/featurehouse/{name}.sql", "columns": {},
    }


def _write_manifest(root: Path, nodes: list[dict], adapter: str = "duckdb", custom_macro: bool = False) -> Path:
    macros = {"macro.dbt.generate_schema_name": {"name": "generate_schema_name", "package_name": "dbt"}}
    if custom_macro:
        macros["macro.test_repo.generate_schema_name"] = {"name": "generate_schema_name", "package_name": "test_repo"}
    document = {
        "metadata": {"adapter_type": adapter, "project_name": "test_repo", "generated_at": "2026-11-30T10:00:00Z"},
        "nodes": {n["unique_id"]: n for n in nodes}, "sources": {}, "macros": macros,
    }
    (root / "target").mkdir(parents=True, exist_ok=True)
    path = root / "target" / "manifest.json"
    path.write_text(json.dumps(document))
    return path


def _bare_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text("name: test_repo\nprofile: test_repo\n")
    return root


def test_without_a_manifest_models_are_in_the_target_schema(tmp_path) -> None:
    root = _bare_project(tmp_path)
    assert Relations(root, _target(schema="analytics")).relation("online_x") == '"analytics"."online_x"'
    assert Relations(root, _target(kind="postgres", schema="s")).relation("fv_x") == '"s"."fv_x"'


def test_dbt_default_macros_place_the_model_for_the_target_asked_for(tmp_path) -> None:
    """A manifest written for dev still places ci's tables: +schema and +alias are worked out per target."""
    root = _bare_project(tmp_path)
    _write_manifest(root, [_node("online_x", schema="dev_features", alias="x_latest",
                                 config={"schema": "features", "alias": "x_latest"})])
    assert Relations(root, _target("dev", "dev")).relation("online_x") == '"dev_features"."x_latest"'
    assert Relations(root, _target("ci", "ci")).relation("online_x") == '"ci_features"."x_latest"'
    postgres = _target("pg", "analytics", kind="postgres")
    assert Relations(root, postgres).relation("online_x") == '"analytics_features"."x_latest"'
    # a model dbt has not seen yet is looked for where it will be by default
    assert Relations(root, _target("ci", "ci")).relation("online_new") == '"ci"."online_new"'


def test_a_custom_naming_macro_uses_the_manifest_of_this_target_only(tmp_path) -> None:
    root = _bare_project(tmp_path)
    _write_manifest(root, [_node("online_x", schema="somewhere_else", alias="x_latest")], custom_macro=True)
    assert Relations(root, _target()).relation("online_x") == '"warehouse"."somewhere_else"."x_latest"'
    for other in (_target("pg", kind="postgres"), _target("other", path="data/other.duckdb")):
        with pytest.raises(WarehouseError) as caught:
            Relations(root, other).relation("online_x")
        assert str(caught.value).startswith("target/manifest.json was written for another dbt target (duckdb "
                                            "database 'warehouse'), and the project overrides generate_schema_name")
        assert f"run 'dbt build --target {other.target_name}'" in str(caught.value)


def test_the_root_project_model_wins_over_a_package_model_of_the_same_name(tmp_path) -> None:
    root = _bare_project(tmp_path)
    _write_manifest(root, [_node("online_x", package="some_package", schema="pkg", config={"schema": "pkg"}),
                           _node("online_x", schema="main_mine", config={"schema": "mine"})])
    assert Relations(root, _target()).relation("online_x") == '"main_mine"."online_x"'


@pytest.mark.parametrize("content", ["", "{\"metadata\": ", "[1, 2]", "\x00\xff"])
def test_a_broken_or_half_written_manifest_counts_as_none(tmp_path, content) -> None:
    root = _bare_project(tmp_path)
    (root / "target").mkdir()
    (root / "target" / "manifest.json").write_text(content, errors="surrogateescape")
    relations = Relations(root, _target())
    assert relations.manifest is None
    assert relations.relation("online_x") == '"main"."online_x"'


def test_the_manifest_is_read_once_per_version_and_from_dbt_target_path(tmp_path, monkeypatch) -> None:
    root = _bare_project(tmp_path)
    path = _write_manifest(root, [_node("online_x")])
    first = load(root)
    assert first is not None and load(root) is first
    _write_manifest(root, [_node("online_x", schema="moved", config={"schema": "moved"})])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load(root) is not first
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    path.rename(moved / "manifest.json")
    assert load(root) is None
    monkeypatch.setenv("DBT_TARGET_PATH", str(moved))
    assert load(root) is not None


def test_staleness_names_each_changed_or_unbuilt_model(tmp_path) -> None:
    root = _bare_project(tmp_path)
    models = root / "models" / "featurehouse"
    models.mkdir(parents=True)
    (models / "online_x.sql").write_text("select 1\n")  # dbt's checksum ignores the trailing newline
    (models / "fv_x.sql").write_text("select 2\n")
    (models / "online_y.sql").write_text("select 3\n")
    _write_manifest(root, [_node("online_x"), _node("fv_x")])
    relations = Relations(root, _target(), models)
    assert relations.stale(["online_x", "fv_x", "online_y", "online_never_compiled"]) == [
        "model fv_x (models/featurehouse/fv_x.sql) changed after the last dbt build "
        "(target/manifest.json of 2026-11-30 10:00:00 UTC), so its table is stale; run 'dbt build'",
        "model online_y (models/featurehouse/online_y.sql) is not in target/manifest.json of 2026-11-30 10:00:00 "
        "UTC: it was compiled after the last dbt build; run 'dbt build'",
    ]


@pytest.mark.parametrize("damage", ["", "{\"format\": 1, \"version\": [1, 2, 3]}", "[]", None])
def test_later_processes_read_a_small_index_instead_of_the_manifest(tmp_path, monkeypatch, damage) -> None:
    """A large manifest takes seconds to parse; each cron sync is a new process."""
    from featurehouse.dbt import manifest as dbt_manifest

    root = _bare_project(tmp_path)
    _write_manifest(root, [_node("online_x", schema="main_f", config={"schema": "f"})])
    parsed = load(root)
    index = root / "target" / "featurehouse" / "manifest_index.json"
    assert index.is_file()
    if damage is not None:
        index.write_text(damage)
    monkeypatch.setattr(dbt_manifest, "_cache", {})  # as in a new process
    calls = []
    real_parse = dbt_manifest._parse
    monkeypatch.setattr(dbt_manifest, "_parse", lambda *a: calls.append(a) or real_parse(*a))
    again = load(root)
    assert again == parsed and again is not parsed
    assert len(calls) == (0 if damage is None else 1)  # a damaged index: the manifest is parsed again
    assert Relations(root, _target("ci", "ci")).relation("online_x") == '"ci_f"."online_x"'


def test_the_rendered_join_is_cached_per_place_dbt_put_its_models(tmp_path) -> None:
    """The SDK's join is rendered by dbt (ref() follows the configs) and cached: a model moved by a
    config dbt has built since (a models .yml's config: schema: included) must not reuse the old SQL."""
    from featurehouse.dbt.rendering import cache_key

    root = _bare_project(tmp_path)
    call = "featurehouse.point_in_time_join(spine='s', views=[{'relation': ref('fv_x')}, {'relation': ref(\"fv_y\")}])"
    without = cache_key(root, _target(), call)
    _write_manifest(root, [_node("fv_x"), _node("fv_y")])
    first = cache_key(root, _target(), call)
    assert cache_key(root, _target(), call) == first
    _write_manifest(root, [_node("fv_x"), _node("fv_y", schema="main_moved", config={"schema": "moved"})])
    path = root / "target" / "manifest.json"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert len({without, first, cache_key(root, _target(), call)}) == 3


def test_names_from_the_manifest_are_quoted_whatever_they_hold(tmp_path) -> None:
    root = _bare_project(tmp_path)
    _write_manifest(root, [_node("online_x", schema='a"; drop table t; --', alias="x y")], custom_macro=True)
    assert Relations(root, _target()).relation("online_x") == '"warehouse"."a""; drop table t; --"."x y"'
