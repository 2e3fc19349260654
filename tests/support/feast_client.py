"""A stock Feast 0.67 Python SDK in its own venv, pointed at `featurehouse serve` (``online_store: remote``).

The venv lives at ``.venvs/feast-0.67`` in the checkout (built on first use from the package index,
~1 min and ~600 MB, then reused). Feast runs in a subprocess: a script prints one JSON object on its
last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from support.repos import PACKAGE_ROOT

FEAST_VERSION = "0.67.0"
FEAST_VENV = PACKAGE_ROOT / ".venvs" / "feast-0.67"


def feast_python() -> Path:
    """The Feast venv's python, built once per checkout (pip from the package index)."""
    python = FEAST_VENV / "bin" / "python"
    probe = [str(python), "-c", "import feast, sys; sys.exit(feast.__version__ != sys.argv[1])", FEAST_VERSION]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    FEAST_VENV.parent.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(FEAST_VENV)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"feast=={FEAST_VERSION}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, f"pip install feast=={FEAST_VERSION} failed:\n{install.stderr[-3000:]}"
    assert subprocess.run(probe).returncode == 0
    return python


def feast_repo(root: Path, url: str) -> Path:
    """A Feast repo folder whose online store is featurehouse's server at ``url`` (a local registry file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(
        textwrap.dedent(f"""\
        project: test_repo
        provider: local
        registry: {root / "registry.db"}
        online_store:
          type: remote
          path: {url}
        entity_key_serialization_version: 3
        """)
    )
    return root


def run_feast(python: Path, repo: Path, script: str, *args: Any) -> Any:
    """Run ``script`` with Feast's python in ``repo`` (argv: the repo, then ``args`` as JSON); its last line as JSON."""
    path = repo / "feast_script.py"  # a file, not -c: Feast reads on-demand views' source code
    path.write_text(script)
    argv = [str(python), str(path), str(repo), *(json.dumps(a, default=str) for a in args)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=repo)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
