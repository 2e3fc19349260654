"""Where SQL is written (docs/architecture.md, "Where SQL is written"), checked on the source.

- SQL the Python side sends to the warehouse (or to DuckDB over a file) is a sqlglot
  expression written with ``.sql(dialect=...)``: no f-string, ``%`` or ``.format`` builds it.
- The online stores' SQL is written by their SQL base (featurehouse/sync/sql_store.py and the
  two store modules): identifiers through ``quote()``, constants through ``literal()``, values
  as the driver's parameters; never a name or value pasted between quotes by hand.
- Macro-call arguments are written by the one serializer, featurehouse/plan/jinja.py: no other
  module spells a Jinja dict literal.

An AST scan over featurehouse/: f-strings (JoinedStr), ``"..." % x`` and ``"...".format(x)``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "featurehouse"

# statements and clauses, not single words: "from" and "join" also occur in error messages
SQL = re.compile(
    r"\bselect\b.*\bfrom\b|\binsert\s+into\b|\bcreate\s+(?:temporary\s+|temp\s+)?(?:table|schema|index|view)\b"
    r"|\bdrop\s+(?:table|schema|view)\b|\balter\s+table\b|\bdelete\s+from\b|\bupdate\b.*\bset\b"
    r"|\bcopy\b.*\b(?:from|to)\b|\bwhere\s+\S+\s*(?:=|>|<|\bis\b|\bin\b)|\bon\s+conflict\b|\bdescribe\s+select\b",
    re.IGNORECASE | re.DOTALL,
)
# a Jinja dict literal such as {'name': ...}
JINJA_DICT = re.compile(r"\{'\w+': ")
# a name or value pasted between quotes: '{x}' or "{x}" (the marker stands for the interpolation)
HAND_QUOTED = re.compile(r"'\x00'|\"\x00\"")

SERIALIZER = "plan/jinja.py"
ONLINE_STORE_SQL = {"sync/sql_store.py", "sync/sqlite.py", "sync/postgres.py"}

# Formatted SQL that stays, with the reason (test_allow_list_is_not_stale keeps them honest).
ALLOWED_SQL: dict[str, str] = {
    "warehouse/duckdb.py": (
        "DuckDB's COPY FROM DATABASE and SET of a profile setting, which sqlglot cannot express: "
        "text around sqlglot-built identifiers"
    ),
    "warehouse/postgres.py": (
        "Postgres' COPY ... TO STDOUT / FROM STDIN that psycopg streams: text around sqlglot-built "
        "identifiers and queries"
    ),
}
ALLOWED_HAND_QUOTED: dict[str, str] = {}
ALLOWED_JINJA_DICTS: dict[str, str] = {}


@dataclass(frozen=True)
class Formatted:
    """A string built by formatting: where, and its text with each interpolation as a marker."""

    module: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"featurehouse/{self.module}:{self.line}: {self.text.replace(chr(0), '{…}')[:100]!r}"


def _formatted(tree: ast.AST, module: str) -> list[Formatted]:
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "\x00" for v in node.values)
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod)
              and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
            text = re.sub(r"%[-+ #0-9.]*[sdifrx]", "\x00", node.left.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
              and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)):
            text = re.sub(r"\{[^{}]*\}", "\x00", node.func.value.value)
        if text is not None:
            found.append(Formatted(module, node.lineno, text))
    return found


def _constants(tree: ast.AST, module: str) -> list[Formatted]:
    return [Formatted(module, node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _modules() -> dict[str, ast.AST]:
    return {path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"), str(path))
            for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def formatted_sql(module: str) -> list[Formatted]:
    return [f for f in _formatted(MODULES[module], module) if SQL.search(f.text.replace("\x00", " x "))]


def hand_quoted_sql(module: str) -> list[Formatted]:
    return [f for f in formatted_sql(module) if HAND_QUOTED.search(f.text)]


def jinja_dicts(module: str) -> list[Formatted]:
    strings = _formatted(MODULES[module], module) + _constants(MODULES[module], module)
    return [s for s in strings if JINJA_DICT.search(s.text)]


def test_python_side_sql_is_built_with_sqlglot() -> None:
    offending = [f for module in MODULES if module not in ONLINE_STORE_SQL and module not in ALLOWED_SQL
                 for f in formatted_sql(module)]
    assert not offending, (
        "SQL built by string formatting; build it as a sqlglot expression and write it with "
        ".sql(dialect=...) (docs/architecture.md, 'Where SQL is written'):\n" + "\n".join(map(str, offending))
    )


def test_online_store_sql_pastes_no_name_or_value_between_quotes() -> None:
    offending = [f for module in MODULES if module not in ALLOWED_HAND_QUOTED for f in hand_quoted_sql(module)]
    assert not offending, (
        "a name or value pasted between quotes in SQL; use quote() for identifiers, literal() for "
        "constants, the driver's parameters for values:\n" + "\n".join(map(str, offending))
    )


def test_macro_arguments_come_from_the_one_serializer() -> None:
    offending = [s for module in MODULES if module != SERIALIZER and module not in ALLOWED_JINJA_DICTS
                 for s in jinja_dicts(module)]
    assert not offending, (
        "a Jinja dict literal spelled by hand; pass Python values to featurehouse.plan.jinja "
        "(jinja_literal, macro_call):\n" + "\n".join(map(str, offending))
    )


@pytest.mark.parametrize(("allowed", "finds"), [
    (ALLOWED_SQL, formatted_sql), (ALLOWED_HAND_QUOTED, hand_quoted_sql), (ALLOWED_JINJA_DICTS, jinja_dicts),
])
def test_allow_list_is_not_stale(allowed, finds) -> None:
    """An entry whose module no longer needs it must go, so the list only ever shrinks."""
    assert all(module in MODULES for module in allowed), sorted(set(allowed) - set(MODULES))
    stale = [module for module in allowed if not finds(module)]
    assert not stale, f"nothing left to allow in {stale}; remove them from the allow-list"


@pytest.mark.parametrize("source", [
    'sql = f"select {columns} from {relation}"',
    'sql = "SELECT %s FROM t" % column',
    'sql = "delete from {} where id = {}".format(table, key)',
    "sql = f\"insert into {t} ({cols}) values ({marks})\"",
    "sql = f'CREATE TEMPORARY TABLE {name} ({columns})'",
])
def test_the_scan_sees_formatted_sql(source: str) -> None:
    found = [f for f in _formatted(ast.parse(source), "x.py") if SQL.search(f.text.replace("\x00", " x "))]
    assert len(found) == 1, source


@pytest.mark.parametrize("source", [
    'message = f"feature view {name!r} has no join key {key!r}; run dbt build first"',
    'message = f"cannot read the model {model} from the warehouse ({error})"',
    'message = f"entity row {row} must be a dict of join keys, not {kind}"',
    'message = f"only dbt knows where model {model} is in target {target!r}"',
])
def test_the_scan_leaves_messages_alone(source: str) -> None:
    assert not [f for f in _formatted(ast.parse(source), "x.py") if SQL.search(f.text.replace("\x00", " x "))]


def test_the_scan_sees_hand_quoted_values_and_jinja_dicts() -> None:
    quoted = _formatted(ast.parse("s = f\"select signature from t where view = '{name}'\""), "x.py")
    assert HAND_QUOTED.search(quoted[0].text)
    built = _formatted(ast.parse("""s = "{'name': %s, 'dtype': %s}" % (a, b)"""), "x.py")
    assert JINJA_DICT.search(built[0].text)
