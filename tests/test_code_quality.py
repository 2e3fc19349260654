"""Lint, format, types and docstrings of the package, so that CI (scripts/test.sh) enforces them.

The tools' settings are in pyproject.toml ([tool.ruff], [tool.mypy]).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Union

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE = CHECKOUT / "featurehouse"
BIN = Path(sys.executable).parent
Definition = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=CHECKOUT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-cache", "featurehouse")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_package_is_formatted_by_ruff() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", "featurehouse")
    assert result.returncode == 0, "run `ruff format featurehouse`:\n" + result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_finds_nothing() -> None:
    # the cache (.mypy_cache, outside git) makes a second run take seconds instead of a minute
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success" in result.stdout


def _public_defs(tree: ast.Module) -> Iterator[tuple[Definition, str | None, str]]:
    """(definition, the class it belongs to or None, its dotted name) for the module's public API.

    Public: no leading underscore, at module level or a method of a public class; functions
    defined inside functions are not API.
    """
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node, None, node.name
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if (isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                            and not member.name.startswith("_")):
                        yield member, node.name, f"{node.name}.{member.name}"


def _inherits_doc(module: str, owner: str, name: str) -> bool:
    """A method that overrides a documented one (``Backend.write`` in each store) shares its docstring,
    as help() and the documentation tools show it."""
    cls = getattr(importlib.import_module(module), owner)
    return any(name in vars(base) and inspect.getdoc(vars(base)[name]) for base in cls.__mro__[1:])


def undocumented() -> list[str]:
    """Public functions, classes and methods of featurehouse/ that have no docstring."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(CHECKOUT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node, owner, name in _public_defs(ast.parse(path.read_text(), str(path))):
            if ast.get_docstring(node) is None and not (owner and _inherits_doc(module, owner, name.split(".")[-1])):
                missing.append(f"{path.relative_to(CHECKOUT)}:{node.lineno}: {name}")
    return missing


def test_every_public_function_and_class_has_a_docstring() -> None:
    missing = undocumented()
    assert missing == [], f"{len(missing)} without a docstring:\n" + "\n".join(missing)


def test_the_docstring_check_sees_a_missing_docstring(tmp_path: Path) -> None:
    """The walk finds public definitions at both levels and skips private and nested ones."""
    tree = ast.parse(
        '"""m"""\n'
        "def shown(): pass\n"
        "def _hidden(): pass\n"
        "class Shown:\n"
        '    """c"""\n'
        "    def method(self):\n"
        "        def nested(): pass\n"
        "    def _private(self): pass\n"
    )
    names = [(name, ast.get_docstring(node)) for node, _, name in _public_defs(tree)]
    assert names == [("shown", None), ("Shown", "c"), ("Shown.method", None)]
