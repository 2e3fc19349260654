"""Render featurehouse's dbt macros to SQL from Python, once per distinct call.

The SDK must run exactly the SQL that `dbt run` runs, so it renders the same macros with
dbt itself (``dbt compile --inline``). Starting dbt costs about 3 s, so each rendering is
cached on disk under ``target/featurehouse/``, keyed by everything that can change the
SQL: the macro call, the dbt target, and the text of every macro file and of
dbt_project.yml. A changed macro or target never reuses a stale rendering.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

from featurehouse.dbt.profile import DbtTarget
from featurehouse.errors import CompileError

if TYPE_CHECKING:
    from dbt.contracts.graph.nodes import CompiledNode
    from dbt.contracts.results import RunExecutionResult

CACHE_DIR = Path("target") / "featurehouse" / "rendered"
_lock = threading.Lock()
_runner = None


def _macro_files(root: Path) -> list[Path]:
    files = sorted((root / "macros").rglob("*.sql")) if (root / "macros").is_dir() else []
    packages = root / "dbt_packages"
    if packages.is_dir():
        files += sorted(packages.glob("*/macros/**/*.sql"))
    return files


def cache_key(root: Path, target: DbtTarget, call: str) -> str:
    """A key that changes when the call, the target or any macro file changes."""
    return cache_keys(root, target, [call])[0]


def cache_keys(root: Path, target: DbtTarget, calls: list[str]) -> list[str]:
    """``cache_key`` of each call; the target and the macro files are read once for all of them."""
    shared = hashlib.sha256()
    shared.update(
        json.dumps(
            [target.profile_name, target.target_name, target.type, target.schema, target.config.get("database")],
            default=str,
        ).encode()
    )
    for path in [root / "dbt_project.yml", *_macro_files(root)]:
        if path.is_file():
            shared.update(str(path.relative_to(root)).encode())
            shared.update(path.read_bytes())
    keys = []
    for call in calls:
        digest = shared.copy()
        digest.update(call.encode())
        digest.update(json.dumps(_ref_locations(root, call)).encode())
        keys.append(digest.hexdigest()[:32])
    return keys


def _ref_locations(root: Path, call: str) -> list[list[str | None]]:
    """Where dbt last placed each model the call refs (target/manifest.json): a config that moves
    them (a models .yml's ``config: schema:`` too) gives a new key once dbt has built it."""
    from featurehouse.dbt import manifest

    found = manifest.load(root)
    if found is None:
        return []
    locations = []
    for name in sorted(set(re.findall(r"ref\((?:'([^']*)'|\"([^\"]*)\")\)", call))):
        model = name[0] or name[1]
        node = found.find(model)
        locations.append([model, node.database, node.schema, node.alias] if node else [model, None, None, None])
    return locations


def render(root: Path, target: DbtTarget, call: str) -> str:
    """The SQL that ``{{ call }}`` renders to in this repo's dbt project and target."""
    return render_many(root, target, [call])[0]


def cached(root: Path, target: DbtTarget, call: str) -> str | None:
    """The cached rendering of ``call``, or None (never starts dbt)."""
    return lookup(root, target, [call])[0]


def lookup(root: Path, target: DbtTarget, calls: list[str]) -> list[str | None]:
    """The cached rendering of each call, or None where there is none (never starts dbt)."""
    from featurehouse.dbt.package_macros import check_version

    check_version(root)  # a cached rendering would hide macros of another featurehouse version
    paths = [root / CACHE_DIR / f"{key}.sql" for key in cache_keys(root, target, calls)]
    return [path.read_text() if path.is_file() else None for path in paths]


def render_many(root: Path, target: DbtTarget, calls: list[str], write_manifest: bool = False) -> list[str]:
    """The SQL of each call; those not cached are rendered together, by one start of dbt.

    ``write_manifest`` lets dbt write target/manifest.json, and the cache keys are then taken
    after it has: used by ``featurehouse compile`` before the first ``dbt build``, when the
    manifest does not yet place the models the calls ref (see ``_ref_locations``).
    """
    unique = list(dict.fromkeys(calls))
    found = dict(zip(unique, lookup(root, target, unique)))
    missing = [call for call, sql in found.items() if sql is None]
    if missing:
        keys = cache_keys(root, target, missing)
        rendered = _render_with_dbt(root, target, missing, write_manifest)
        if write_manifest:
            keys = cache_keys(root, target, missing)
        for key, call, sql in zip(keys, missing, rendered):
            _store(root / CACHE_DIR / f"{key}.sql", sql)
            found[call] = sql
    return [cast(str, found[call]) for call in calls]


def _store(path: Path, sql: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(sql)
    temporary.replace(path)  # atomic: a concurrent reader never sees half a file


def _boundary(index: int) -> str:
    return f"-- __fh_rendered_call_{index}_ends_here__"


def _render_with_dbt(root: Path, target: DbtTarget, calls: list[str], write_manifest: bool) -> list[str]:
    """Render ``calls`` with one ``dbt compile --inline``: each call's output ends at its boundary line."""
    global _runner
    inline = "".join("{{ " + call + " }}\n" + _boundary(i) + "\n" for i, call in enumerate(calls))
    with _lock:
        from dbt.cli.main import dbtRunner

        if _runner is None:
            _runner = dbtRunner()
        args = [
            "compile",
            "--inline",
            inline,
            "--project-dir",
            str(root),
            "--profiles-dir",
            str(target.profiles_dir),
            "--target",
            target.target_name,
            "--log-level",
            "none",
            "--no-populate-cache",
        ]
        if not write_manifest:
            args.append("--no-write-json")
        cwd = os.getcwd()
        try:
            os.chdir(root)  # dbt resolves relative paths (DuckDB files, logs) from here
            result = _runner.invoke(args)
        finally:
            os.chdir(cwd)
            if target.type == "duckdb":
                # dbt-duckdb keeps its process-wide connection, and with it the file's lock: another
                # process (dbt build in a terminal, a sync from cron) could not open the warehouse
                from dbt.adapters.duckdb.connections import DuckDBConnectionManager

                DuckDBConnectionManager.close_all_connections()
    if not result.success or not result.result:
        raise CompileError(f"dbt could not render the point-in-time join: {_failure_reason(result.exception)}")
    # `compile --inline` answers with the run results of one compiled (SQL) node
    node = cast("CompiledNode", cast("RunExecutionResult", result.result).results[0].node)
    if node.compiled_code is None:
        raise CompileError("dbt rendered no SQL for the point-in-time join")
    return _split(node.compiled_code, len(calls))


def _split(text: str, count: int) -> list[str]:
    out = []
    for i in range(count):
        head, found, text = text.partition("\n" + _boundary(i))
        if not found:
            raise CompileError("dbt's rendering of the point-in-time joins lost a boundary line")
        out.append(head)
        text = text.removeprefix("\n")
    return out


def _failure_reason(exception: BaseException | None) -> str:
    """dbt's reason for a failed inline compile, as one line.

    dbt wraps the cause in "Error parsing inline query"; the cause is what the user needs.
    A model that does not exist means models/featurehouse/ is behind the specs.
    """
    while exception is not None and str(exception).strip() == "Error parsing inline query" and exception.__context__:
        exception = exception.__context__
    reason = " ".join(str(exception).split()) if exception else "dbt compile failed"
    missing = re.search(r"depends on a node named '([^']+)' which was not found", reason)
    if missing:
        return (
            f"the dbt project has no model '{missing[1]}'; run 'featurehouse compile' to write the "
            "models of the feature views, then 'dbt build'"
        )
    return reason
