"""The layer contract of docs/architecture.md, checked by import-linter (pyproject.toml, [tool.importlinter])."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE = CHECKOUT / "featurehouse"


def test_every_layer_imports_only_the_layers_below_it() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=CHECKOUT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_part_of_the_package_is_in_a_layer() -> None:
    """A new top-level module outside the contract would be free to import anything."""
    contracts = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layered = {
        name.strip()
        for contract in contracts if not contract.get("containers")
        for layer in contract["layers"] for name in layer.split("|")
    }
    parts = {
        f"featurehouse.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.name != "__init__.py") or (path / "__init__.py").is_file()
    }
    assert parts - layered == set(), "add these to [tool.importlinter] layers in pyproject.toml"
