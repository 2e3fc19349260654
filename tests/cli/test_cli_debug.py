"""`--debug`: the traceback of a user error shows the exception behind it, even one `raise ... from None` hides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.driver_stats import MINIMAL_SPECS as SPEC
from support.repos import write_repo

FEATUREHOUSE = str(Path(sys.executable).parent / "featurehouse")


def _compile_for_an_unknown_dialect(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    # the CompileError is raised `from None` over sqlglot's ValueError ("Unknown dialect ...")
    return subprocess.run([FEATUREHOUSE, *options, "--repo", str(root), "compile", "--dialect", "nosuchsql"],
                          capture_output=True, text=True, timeout=120)


def test_debug_shows_the_cause_a_user_error_hides(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"stats.yml": SPEC})
    result = _compile_for_an_unknown_dialect(root, "--debug")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "featurehouse.errors.CompileError: cannot compile for the SQL dialect 'nosuchsql'" in result.stderr
    # the underlying exception, and where it was raised
    assert "ValueError: Unknown dialect 'nosuchsql'" in result.stderr
    assert "During handling of the above exception, another exception occurred" in result.stderr
    assert result.stderr.index("ValueError: Unknown dialect") < result.stderr.index("CompileError")


def test_without_debug_the_same_error_is_one_line(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"stats.yml": SPEC})
    result = _compile_for_an_unknown_dialect(root)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot compile for the SQL dialect 'nosuchsql'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "ValueError" not in result.stderr
