"""`pytest -m "not postgres and not redis"` runs no test that needs a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def collected(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                            cwd=CHECKOUT, capture_output=True, text=True)
    assert result.returncode in (0, 5), result.stdout[-3000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_deselecting_the_servers_leaves_only_tests_without_them() -> None:
    # sqlite/postgres/redis-parametrized tests whose module fixtures start the servers
    everything = collected("tests/sync/test_store_layouts.py")
    without = collected("-m", "not postgres and not redis", "tests/sync/test_store_layouts.py")
    assert any("[postgres]" in test for test in everything)
    assert without and not any("[postgres]" in test or "[redis]" in test for test in without)
    assert len(without) < len(everything)
