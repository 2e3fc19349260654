"""Build throwaway feature repos for tests: specs, a dbt project and both warehouses' profiles."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent

_DBT_PROJECT = """\
name: test_repo
version: "0.1.0"
config-version: 2
profile: test_repo
model-paths: ["models"]
seed-paths: ["seeds"]
target-path: target
"""


def postgres_output(postgres_url: str, schema: str, name: str = "pg") -> str:
    """A profiles.yml output (indented for `outputs:`) for the Postgres server at ``postgres_url``."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(postgres_url)
    return f"""\
    {name}:
      type: postgres
      host: {parts.get('host', '127.0.0.1')}
      port: {parts.get('port', 5432)}
      user: {parts.get('user', 'postgres')}
      password: "{parts.get('password', '')}"
      dbname: {parts.get('dbname', 'test')}
      schema: {schema}
      threads: 1
"""


def drop_postgres_schema(postgres_url: str, schema: str) -> None:
    """Drop a throwaway schema and everything in it."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def write_repo(
    root: Path,
    specs: dict[str, str],
    *,
    postgres_url: str | None = None,
    postgres_schema: str = "featurehouse_test",
    target: str = "dev",
    online_store: str = "  type: sqlite\n  path: data/online.db\n",
) -> Path:
    """Write a feature repo at ``root`` whose dbt package is this checkout (symlinked, as `dbt deps` does)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "dbt_project.yml").write_text(_DBT_PROJECT)
    outputs = f"""\
test_repo:
  target: {target}
  outputs:
    dev:
      type: duckdb
      path: data/warehouse.duckdb
      threads: 1
"""
    if postgres_url:
        outputs += postgres_output(postgres_url, postgres_schema)
    (root / "profiles.yml").write_text(outputs)
    (root / "featurehouse.yml").write_text(f"project: test_repo\nspecs: feature_specs\nonline_store:\n{online_store}")
    packages = root / "dbt_packages"
    packages.mkdir(exist_ok=True)
    link = packages / "featurehouse"
    if not link.exists():
        os.symlink(PACKAGE_ROOT, link)
    specs_dir = root / "feature_specs"
    specs_dir.mkdir(exist_ok=True)
    for name, text in specs.items():
        (specs_dir / name).write_text(textwrap.dedent(text))
    return root


_runner = None
_last_root: Path | None = None


def reset_dbt_duckdb() -> None:
    """Close dbt-duckdb's process-wide connection (see conftest.fresh_dbt_duckdb)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    DuckDBConnectionManager.close_all_connections()


def run_dbt(root: Path, *args: str, target: str | None = None) -> None:
    """Run dbt in-process in ``root``; raise with dbt's own message when it fails."""
    global _runner, _last_root
    from dbt.cli.main import dbtRunner

    if _runner is None:
        _runner = dbtRunner()
    if _last_root is not None and _last_root != root:
        reset_dbt_duckdb()  # another project: its own DuckDB file, not the previous one's
    _last_root = root
    command = [*args, "--project-dir", str(root), "--profiles-dir", str(root)]
    if target:
        command += ["--target", target]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = _runner.invoke(command)
    finally:
        os.chdir(cwd)
    if not result.success:
        detail = result.exception or [
            getattr(r, "message", r) for r in (getattr(result.result, "results", None) or []) if getattr(r, "status", "") in ("error", "fail")
        ]
        raise AssertionError(f"dbt {' '.join(args)} failed in {root}: {detail}")


def winners_hooks(root: Path, target: str) -> list[str]:
    """The SQL of the fv_ models' winners hooks (macros/event_time_winners.sql), rendered by dbt
    from the hook's own macro with ``ref('fv_x')`` for ``this``: what a rebuild of the fv_ models
    would run after a test replaced their rows directly. Empty where the hook writes nothing."""
    from featurehouse.dbt import rendering
    from featurehouse.dbt.profile import load_target
    from featurehouse.plan.jinja import jinja_call
    from featurehouse.plan.joins import event_time_winners_call, feature_view_model, has_event_time_winners
    from featurehouse.spec.repo import load_repo

    repo = load_repo(root)
    dbt_target = load_target(root, target, root)
    calls = [
        event_time_winners_call(repo, view, jinja_call("ref", feature_view_model(view.name)))
        for view in repo.feature_views.values()
        if has_event_time_winners(view, dbt_target.dialect)
    ]
    rendered = rendering.render_many(root, dbt_target, calls)
    return [sql for sql in rendered if sql.strip()]
