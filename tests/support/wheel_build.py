"""Build featurehouse's wheel the way a release would, without leaving build/ in the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent.parent


def source_files() -> list[str]:
    """What a fresh clone of this checkout holds: tracked files plus new ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=CHECKOUT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (CHECKOUT / name).is_file()]


def build_wheel(workdir: Path) -> Path:
    """Copy the source to ``workdir``/source, build the wheel into ``workdir``/dist, return its path."""
    source = workdir / "source"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(workdir / "dist"),
                             str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    # a quiet build: no deprecation of our own configuration (license as a table was one)
    assert "DeprecationWarning" not in result.stderr and "BuildBackendWarning" not in result.stderr, result.stderr
    assert not (source / "build").exists()  # setup.py builds in a temporary folder
    [wheel] = (workdir / "dist").glob("featurehouse-*.whl")
    return wheel
