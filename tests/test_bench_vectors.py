"""bench/bench_vectors.py runs end to end on tiny data and prints its table (timings unchecked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# the script's Postgres rows (bench/bench_vectors_postgres.py) start a throwaway pgvector server
pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_vectors.py"


def test_bench_vectors_runs_and_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--docs", "2000", "--dims", "16", "--queries", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| measurement | store | featurehouse | raw client | ratio | baseline |"
    assert any(line.startswith("| search, ttl + where p50 (ms) | sqlite |") for line in lines)
    assert any(line.startswith("| sync 2,000 embeddings (s) | sqlite |") for line in lines)
    assert "Feast 0.67" in result.stdout
