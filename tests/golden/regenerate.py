"""Regenerate the golden SQL of the warehouses that cannot run here, rendered by dbt itself.

    .venv/bin/python -m tests.golden.regenerate            # rewrite tests/golden/<dialect>/
    .venv/bin/python -m tests.golden.regenerate --check    # exit 1 when a golden file is stale
    .venv/bin/python -m tests.golden.regenerate --dialect snowflake --out /tmp/x

Per dialect (snowflake, bigquery, databricks, trino) it builds a scratch dbt project whose
models are (1) the compiler's output for the golden specs (tests/golden/specs_common) and for
the point-in-time harness's specs (tests/support/pit_harness.py), and (2) one model per macro
call of MACRO_CALLS; runs ``dbt compile`` with a stand-in adapter of that type
(tests/golden/dialect_stub.py) that loads the real adapter's macro package from its PyPI
wheel (``pip download --no-deps``, pinned in ADAPTERS, cached under
~/.cache/featurehouse/golden-adapters); and writes the compiled SQL to
tests/golden/<dialect>/compiled/ (models) and tests/golden/<dialect>/macros/ (macro calls).
Without options it also rewrites the DuckDB and Postgres goldens (the compiler's output,
tests/golden/duckdb and postgres) through ``FEATUREHOUSE_UPDATE_GOLDEN=1 pytest
tests/compile/test_compiler.py``. ``--dialect duckdb --out DIR`` (or postgres, which needs the
local server) renders those two with their real adapters, for a before/after comparison of a
macro change.

Never edit a golden file by hand: change the macros or the compiler, rerun this, review the diff.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DIALECTS = ["snowflake", "bigquery", "databricks", "trino"]
# the adapter wheels whose macro packages render each dialect (dbt-core 1.11's line)
ADAPTERS = {
    "snowflake": "dbt-snowflake==1.11.6",
    "bigquery": "dbt-bigquery==1.11.3",
    "databricks": "dbt-databricks==1.11.8",
    "trino": "dbt-trino==1.11.0",
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "featurehouse" / "golden-adapters"
AS_OF = "2026-01-01 12:00:00"
# adapters installed here: rendered with the real adapter, only into --out (a before/after
# check of a macro change; their committed goldens are the compiler's, tests/compile)
INSTALLED = ["duckdb", "postgres"]
PG_SCHEMA = "h8_golden_render"

_VIEW = (
    "{'name': 'drv', 'relation': ref('fv_drv'), 'join_keys': ['driver_id'], "
    "'features': [{'name': 'f_int', 'dtype': 'int64'}, {'name': 'f_str', 'dtype': 'string'}], "
    "'all_features': [{'name': 'f_int', 'dtype': 'int64'}, {'name': 'f_str', 'dtype': 'string'}, "
    "{'name': 'f_float', 'dtype': 'float64'}], 'ttl_seconds': 3600, 'filter_by_created': false, 'prefix': ''}"
)
_CREATED_VIEW = (
    "{'name': 'drv_fc', 'relation': ref('fv_drv_fc'), 'join_keys': ['driver_id'], "
    "'features': [{'name': 'f_int', 'dtype': 'int64'}, {'name': 'f_str', 'dtype': 'string'}], "
    "'ttl_seconds': 3600, 'filter_by_created': true, 'prefix': 'drv_fc__'}"
)
_AGGREGATIONS = (
    "[{'name': 'f_sum_1h', 'column': 'f_float', 'function': 'sum', 'window_seconds': 3600}, "
    "{'name': 'f_count_1h', 'column': 'f_float', 'function': 'count', 'window_seconds': 3600}, "
    "{'name': 'f_max_2h', 'column': 'f_float', 'function': 'max', 'window_seconds': 7200}, "
    "{'name': 'f_std_2h', 'column': 'f_float', 'function': 'stddev', 'window_seconds': 7200}]"
)
_AGG_VIEW = (
    "{'name': 'drv_agg', 'relation': ref('fv_drv'), 'join_keys': ['driver_id'], "
    "'features': [{'name': 'f_sum_1h', 'dtype': 'float64'}, {'name': 'f_count_1h', 'dtype': 'int64'}], "
    "'aggregations': " + _AGGREGATIONS + ", 'ttl_seconds': 0, 'filter_by_created': false, 'prefix': 'agg__'}"
)
_SPINE_COLUMNS = "['driver_id', 'customer_id', 'event_timestamp', 'label']"
_FEATURES = (
    "[{'name': 'f_int', 'dtype': 'int64'}, {'name': 'f_str', 'dtype': 'string'}, "
    "{'name': 'f_float', 'dtype': 'float64'}]"
)
_PIT = "featurehouse.point_in_time_join(ref('spine_model'), "
_SNAPSHOT = "featurehouse.latest_snapshot(ref('fv_drv'), ['driver_id'], "
# file name -> the macro call its golden holds (relations: the harness's models)
MACRO_CALLS = {
    "point_in_time_join": f"{_PIT}[{_VIEW}], spine_columns={_SPINE_COLUMNS})",
    "point_in_time_join_created_filter": (f"{_PIT}[{_VIEW}, {_CREATED_VIEW}], spine_columns={_SPINE_COLUMNS})"),
    "point_in_time_join_aggregations": (f"{_PIT}[{_AGG_VIEW}], spine_columns={_SPINE_COLUMNS})"),
    "latest_snapshot": f"{_SNAPSHOT}{_FEATURES}, 3600, false)",
    "latest_snapshot_created_filter": f"{_SNAPSHOT}{_FEATURES}, 0, true)",
    "window_aggregation": (
        "featurehouse.window_aggregation('__fh_spine', ref('fv_drv'), ['driver_id'], " + _AGGREGATIONS + ")"
    ),
    "window_aggregation_snapshot": (
        "featurehouse.window_aggregation_snapshot(ref('fv_drv'), ['driver_id'], " + _AGGREGATIONS + ")"
    ),
    "expire_latest_snapshot": "'select 1 as x; ' ~ featurehouse.expire_latest_snapshot(ref('fv_drv'), 3600)",
    "pit_version_key": (
        "'select ' ~ featurehouse.pit_version_key('event_timestamp', 'created_timestamp') ~ ' as k from ' "
        "~ ref('fv_drv')"
    ),
    "utc_timestamp": "'select ' ~ featurehouse.utc_timestamp('event_timestamp') ~ ' as t from ' ~ ref('fv_drv')",
    "snapshot_as_of": "'select ' ~ featurehouse.snapshot_as_of() ~ ' as t'",
}
# macro calls that are not a whole query: a spine CTE in front makes them one
_WRAPPED = {
    "window_aggregation": (
        "with __fh_spine as (select driver_id, event_timestamp as __fh_ts, row_number() over (order by label) "
        "as __fh_row from {{ ref('spine_model') }})\n"
    ),
}


def _wheel_dir(dialect: str) -> Path:
    """The unpacked wheel of ``dialect``'s adapter (downloaded once with pip)."""
    requirement = ADAPTERS[dialect]
    target = CACHE / requirement / dialect
    if (target / "dbt" / "include" / dialect).is_dir():
        return target
    downloads = CACHE / requirement / "wheel"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(downloads), requirement],
        check=True,
    )
    wheel = next(downloads.glob("*.whl"))
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.startswith(f"dbt/include/{dialect}/") or n.endswith("/column.py")]
        archive.extractall(partial, names)
    partial.replace(target)
    return target


def _write_plugin(stubs: Path, dialect: str) -> None:
    package = stubs / "dbt" / "adapters" / dialect
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"from dialect_stub import plugin\n\nPlugin = plugin({dialect!r})\n")
    version = ADAPTERS[dialect].split("==")[1]
    (package / "__version__.py").write_text(f"version = {version!r}\n")
    include = stubs / "dbt" / "include"
    include.mkdir(parents=True, exist_ok=True)


def _scratch_project(work: Path, dialect: str) -> None:
    """The dbt project dbt compiles: golden + harness models, macro calls, empty DuckDB tables."""
    sys.path.insert(0, str(ROOT / "tests"))
    import duckdb
    from support import pit_harness

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    (work / "dbt_project.yml").write_text(
        textwrap.dedent(f"""\
        name: golden
        version: "0.1.0"
        config-version: 2
        profile: golden
        model-paths: ["models"]
        target-path: target
        vars:
          featurehouse_as_of: "{AS_OF}"
        """)
    )
    if dialect == "postgres":
        output = (
            "      type: postgres\n      host: 127.0.0.1\n      port: 5432\n      user: postgres\n      password: ''\n"
            f"      dbname: test\n      schema: {PG_SCHEMA}\n      search_path: {PG_SCHEMA}\n"
        )
    else:
        output = f"      type: {dialect}\n      path: golden.duckdb\n"
    (work / "profiles.yml").write_text(f"golden:\n  target: stub\n  outputs:\n    stub:\n{output}      threads: 1\n")
    (work / "dbt_packages").mkdir()
    os.symlink(ROOT, work / "dbt_packages" / "featurehouse")
    models = work / "models"
    # the golden specs (as tests/compile/test_compiler.py compiles them)
    golden_repo = work / "repos" / "golden"
    golden_repo.mkdir(parents=True)
    (golden_repo / "featurehouse.yml").write_text("project: golden\nspecs: feature_specs\n")
    shutil.copytree(GOLDEN / "specs_common", golden_repo / "feature_specs")
    compiler.write(models / "golden", compiler.compile_repo(load_repo(golden_repo), dialect))
    # the point-in-time harness's specs: the semantic check runs these models in DuckDB
    harness_repo = work / "repos" / "pit"
    (harness_repo / "feature_specs").mkdir(parents=True)
    (harness_repo / "featurehouse.yml").write_text("project: pit\nspecs: feature_specs\n")
    for name, text in pit_harness._specs("").items():
        (harness_repo / "feature_specs" / name).write_text(text)
    compiler.write(models / "pit", compiler.compile_repo(load_repo(harness_repo), dialect))
    (models / "sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables: [{name: item_stats}]\n"
    )
    (models / "ranking_labels.sql").write_text("select 1 as user_id\n")
    (models / "spine_model.sql").write_text("select 1 as driver_id\n")
    calls = models / "macro_calls"
    calls.mkdir()
    for name, call in MACRO_CALLS.items():
        (calls / f"{name}.sql").write_text(_WRAPPED.get(name, "") + "{{ " + call + " }}\n")
    # the relations dbt introspects while compiling (the spines' columns)
    statements = [
        "create table ranking_labels (user_id bigint, item_id varchar, event_timestamp timestamp, label boolean)",
        "create table spine (driver_id bigint, customer_id bigint, event_timestamp timestamp, label varchar)",
        "create table spine_model as select * from spine",
    ]
    if dialect == "postgres":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as pg:
            pg.execute(f'drop schema if exists "{PG_SCHEMA}" cascade')
            pg.execute(f'create schema "{PG_SCHEMA}"')
            pg.execute(f'set search_path to "{PG_SCHEMA}"')
            for statement in statements:
                pg.execute(statement)
        return
    con = duckdb.connect(str(work / "golden.duckdb"))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def render(dialect: str, out: Path) -> None:
    """Write ``dialect``'s golden files (compiled/ and macros/) under ``out``."""
    installed = dialect in INSTALLED
    wheel = CACHE if installed else _wheel_dir(dialect).parent
    with tempfile.TemporaryDirectory(prefix=f"fh-golden-{dialect}-") as tmp:
        work = Path(tmp)
        stubs = work / "stubs"
        if not installed:
            _write_plugin(stubs, dialect)
        (work / "project").mkdir()
        _scratch_project(work / "project", dialect)
        env = {
            **os.environ,
            "FEATUREHOUSE_GOLDEN_ADAPTERS": str(wheel),
            "PYTHONPATH": os.pathsep.join([str(stubs), str(GOLDEN)]),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        # a separate process: the stand-in plugin must not leak into this one
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from dbt.cli.main import cli; cli()",
                "compile",
                "--project-dir",
                ".",
                "--profiles-dir",
                ".",
                "--no-populate-cache",
                "--log-format",
                "text",
            ],
            cwd=work / "project",
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"dbt compile failed for {dialect}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        compiled = work / "project" / "target" / "compiled" / "golden" / "models"
        shutil.rmtree(out, ignore_errors=True)
        for folder, kind in (("golden", "compiled/golden"), ("pit", "compiled/pit"), ("macro_calls", "macros")):
            for path in sorted((compiled / folder).glob("*.sql")):
                target = out / kind / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(_tidy(path.read_text()))


def _tidy(sql: str) -> str:
    """One trailing newline and no trailing blanks, so that a diff shows only real changes.

    The one value that differs between two runs, the time the dbt invocation started
    (``snapshot_built_at`` of the online snapshots), is replaced by a fixed instant.
    """
    sql = re.sub(
        r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}'( as \w+\) as snapshot_built_at)",
        r"'2000-01-01 00:00:00.000000'\1",
        sql,
    )
    return "\n".join(line.rstrip() for line in sql.strip().splitlines()) + "\n"


def _same_tree(a: Path, b: Path) -> list[str]:
    """The relative paths that differ between two folders (missing on one side included)."""
    names = {p.relative_to(a) for p in a.rglob("*.sql")} | {p.relative_to(b) for p in b.rglob("*.sql")}
    return sorted(
        str(n)
        for n in names
        if not ((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False))
    )


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with --check, compare) the golden SQL of the chosen dialects."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    parser.add_argument("--dialect", action="append", choices=DIALECTS + INSTALLED, help="default: all but installed")
    parser.add_argument("--out", type=Path, help="write here instead of tests/golden")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for dialect in args.dialect or DIALECTS:
        if dialect in INSTALLED and not args.out:
            parser.error(f"{dialect} is rendered only into --out (its goldens are the compiler's)")
        folder = GOLDEN / dialect
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                render(dialect, Path(tmp) / dialect)
                stale += [f"{dialect}/{n}" for n in _same_tree(Path(tmp) / dialect, folder)]
        else:
            render(dialect, (args.out or GOLDEN) / dialect)
            print(f"wrote {(args.out or GOLDEN) / dialect}")
    if not args.check and not args.dialect and not args.out:
        # the compiler's DuckDB and Postgres goldens, through their test's own update switch
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/compile/test_compiler.py",
                "-k",
                "test_golden_sql",
            ],
            cwd=ROOT,
            env={**os.environ, "FEATUREHOUSE_UPDATE_GOLDEN": "1"},
            check=True,
        )
        print(f"wrote {GOLDEN / 'duckdb'} and {GOLDEN / 'postgres'}")
    if stale:
        print(
            "stale golden files (rerun python -m tests.golden.regenerate and review the diff):\n  " + "\n  ".join(stale)
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
