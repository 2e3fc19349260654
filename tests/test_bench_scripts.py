"""The benchmark scripts that share the sync bench's repo still run end to end, on tiny data.

They are run by hand, so nothing else notices when a refactor breaks one (bench_online_reads
once synced a repo nobody had built). Timings are not checked here: see bench/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(("script", "args", "header"), [
    ("bench_sync.py", ["--entities", "2000"], "| store | full sync | entities/s |"),
    ("bench_online_reads.py", ["--entities", "200", "--calls", "50"], "| read | featurehouse p50 |"),
])
def test_bench_script_runs_and_prints_its_table(script, args, header, postgres_url, redis_url):
    env = {**os.environ, "FEATUREHOUSE_BENCH_POSTGRES_URL": postgres_url, "FEATUREHOUSE_BENCH_REDIS_URL": redis_url}
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert header in result.stdout, result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith(header)]
    assert len(rows) >= 3, result.stdout  # one row per store or read kind


@pytest.mark.slow
def test_bench_vectors_feast_runs_and_checks_feast_against_featurehouse():
    # Feast runs in its own venv (built on first use: ~2 min, ~600 MB), never imported by this one
    venv = BENCH.parent / ".venvs" / "feast-0.67-debian"
    if not (venv / "bin" / "python").exists():
        base = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pins = ["feast==0.67.0", "sqlite-vec==0.1.9", "pysqlite3-binary==0.5.4.post2"]
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pins], check=True, timeout=900)
    result = subprocess.run([sys.executable, str(BENCH / "bench_vectors_feast.py"), "--docs", "300", "--queries", "3"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| search p50 (ms) |" in result.stdout, result.stdout
    assert "featurehouse top-10 == exact cosine reference (numpy, float64, ties by key): 3/3 queries" in result.stdout
    assert "Feast errors: 0/3" in result.stdout, result.stdout
