"""The "add an online store" recipe names every file a new store touches, and the SQL stores share one base.

docs/recipes/add-an-online-store.md lists the files; these tests fail when a file on the
list is gone, when the count in its text is off, when a module or test that names every
store type is missing from it, or when a SQL store grows its own copy of the DDL, the
state table, the upsert or the per-thread connection registry again.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parents[1]
RECIPE = ROOT / "docs" / "recipes" / "add-an-online-store.md"
SYNC = ROOT / "featurehouse" / "sync"


def store_types() -> list[str]:
    from featurehouse.spec.model import OnlineStoreConfig

    return list(typing.get_args(OnlineStoreConfig.model_fields["type"].annotation))


def listed() -> list[str]:
    """The files of the recipe's list, in order: the `paths` of each bullet before its " — "."""
    text = RECIPE.read_text()
    section = text.split("## Files a new online store touches", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"^- ", section, flags=re.MULTILINE)[1:]
    return [path for bullet in bullets for path in re.findall(r"`([^`]+)`", re.split(r" —\s", bullet, maxsplit=1)[0])]


def on_the_list(path: str, names: list[str]) -> bool:
    """Whether ``path`` (relative to the checkout) is a listed file, ``<store>`` standing for a store type."""
    for entry in names:
        if "<store>" in entry:
            if any(entry.replace("<store>", kind) == path for kind in store_types()):
                return True
        elif entry == path:
            return True
    return False


def test_the_recipe_says_how_many_files_it_lists_and_each_exists() -> None:
    names = listed()
    stated = re.search(r"touches these (\d+) files", RECIPE.read_text())
    assert stated, "the recipe must say how many files a new store touches"
    assert len(names) == int(stated.group(1)), names
    assert len(set(names)) == len(names), "a file is listed twice"
    for entry in names:
        if "<store>" in entry:  # the new module: every store there is has one at that path
            for kind in store_types():
                assert (ROOT / entry.replace("<store>", kind)).is_file(), (entry, kind)
        else:
            assert (ROOT / entry).is_file(), entry


def _string_literals(path: Path) -> set[str]:
    """The strings of ``path``'s code (f-strings' literal parts too), not its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_every_module_that_names_a_store_type_is_on_the_list() -> None:
    # a module with the string "redis" in its code (not in prose) dispatches or checks by store
    # type: a new store must be added there too ("sqlite" and "postgres" also name warehouses)
    names = listed()
    online_only = [kind for kind in store_types() if kind not in ("sqlite", "postgres")]
    found = []
    for path in sorted((ROOT / "featurehouse").rglob("*.py")):
        literals = _string_literals(path)
        if any(kind in literals for kind in online_only):
            found.append(path.relative_to(ROOT).as_posix())
    assert "featurehouse/sync/__init__.py" in found  # the check finds what it is meant to
    missing = [path for path in found if not on_the_list(path, names)]
    assert not missing, f"these modules name the store types but the recipe does not list them: {missing}"


def test_every_test_that_runs_each_store_is_on_the_list() -> None:
    names = listed()
    every = re.compile(r"\[\s*" + r",\s*".join(f'"{kind}"' for kind in store_types()) + r"\s*\]")
    found = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "tests").rglob("*.py"))
             if every.search(path.read_text())]
    assert len(found) >= 3, found
    missing = [path for path in found if not on_the_list(path, names)]
    assert not missing, f"these tests run every store but the recipe does not list them: {missing}"


def _sql_store_modules() -> list[Path]:
    """The modules of the SQL stores: those whose backend subclasses SQLBackend."""
    import importlib

    from featurehouse.sync.sql_store import SQLBackend

    modules = []
    for path in sorted(SYNC.glob("*.py")):
        module = importlib.import_module(f"featurehouse.sync.{path.stem}")
        if any(isinstance(v, type) and issubclass(v, SQLBackend) and v is not SQLBackend
               and v.__module__ == module.__name__ for v in vars(module).values()):
            modules.append(path)
    return modules


def test_the_sql_stores_keep_no_copy_of_the_shared_sql() -> None:
    modules = _sql_store_modules()
    assert [p.stem for p in modules] == ["postgres", "sqlite"]
    # (CREATE TEMPORARY TABLE of a staging table is the store's own way of moving rows)
    shared = {
        "a CREATE TABLE": re.compile(r"CREATE TABLE", re.IGNORECASE),
        "an upsert (ON CONFLICT)": re.compile(r"ON CONFLICT"),
        "a primary key": re.compile(r"PRIMARY KEY"),
        "the sync state's columns": re.compile(r"signature, synced_at"),
        "the tie-break": re.compile(r"is not null and"),
    }
    for path in modules:
        literals = "\n".join(_string_literals(path))
        for what, pattern in shared.items():
            assert not pattern.search(literals), f"{path.name} builds {what} itself; sql_store.py has it"


def test_one_copy_of_each_shared_piece() -> None:
    import featurehouse.sync.base as base
    import featurehouse.sync.sql_store as sql_store

    sources = {Path(p).resolve(): p.read_text() for p in (ROOT / "featurehouse").rglob("*.py")}

    def where(pattern: str) -> list[Path]:
        return [path for path, text in sources.items() if re.search(pattern, text, re.MULTILINE)]

    assert where(r"datetime\(1970, *1, *1") == [Path(base.__file__).resolve()]  # EPOCH
    # the per-thread connection registry of every reader (Connections)
    assert where(r"threading\.local\(\)") == [Path(base.__file__).resolve()]
    assert where(r"^def _?decoder\(") == [Path(base.__file__).resolve()]  # the dispatch by dtype
    assert where(r"^def (newer_condition|_?create_table_sql|_?upsert_sql)\(") == [Path(sql_store.__file__).resolve()]
    from featurehouse.sync.base import Backend
    from featurehouse.sync.sqlite import SQLiteBackend

    assert not hasattr(Backend, "kind")  # the config's type names a store; no second name on the class
    assert not hasattr(SQLiteBackend, "drop_view")  # nothing called it


def test_a_dialect_makes_the_ddl_and_upsert_of_a_new_sql_store() -> None:
    # what a new SQL store writes itself is a dialect: the base builds its table and upsert from it
    from featurehouse.sync.layout import ViewLayout
    from featurehouse.sync.sql_store import SQLDialect, create_table_sql, upsert_sql

    dialect = SQLDialect(types={"int64": "BIGINT", "string": "VARCHAR", "timestamp": "DATETIME(6)"},
                         array=lambda element: "JSON", placeholder="%s", table_options="ENGINE=InnoDB",
                         distinct=lambda a, b: f"{a} <=> {b}")
    layout = ViewLayout("stats", ("driver_id",), ("int64",), ("city", "tags"), ("string", "array<string>"), 0)
    ddl = create_table_sql(dialect, layout, '"stats"')
    assert ddl == ('CREATE TABLE "stats" ("driver_id" BIGINT NOT NULL, "event_timestamp" DATETIME(6) NOT NULL, '
                   '"created_timestamp" DATETIME(6), "city" VARCHAR, "tags" JSON, PRIMARY KEY ("driver_id")) '
                   "ENGINE=InnoDB")
    upsert = upsert_sql(dialect, layout, '"stats"')
    assert upsert.startswith('INSERT INTO "stats" ("driver_id", "event_timestamp", "created_timestamp", "city", '
                             '"tags") VALUES (%s, %s, %s, %s, %s) ON CONFLICT ("driver_id") DO UPDATE SET ')
    assert 'excluded."created_timestamp" <=> "stats"."created_timestamp"' in upsert
