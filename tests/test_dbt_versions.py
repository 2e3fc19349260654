"""The oldest supported dbt-core and DuckDB build the same training set and online rows as the newest.

pyproject.toml accepts dbt-core 1.8 to 1.11 and DuckDB 1.1 to 2.x
(docs/decisions/0014-supported-dbt-and-duckdb-versions.md). This test installs featurehouse's
wheel into a venv with the oldest pair and runs the example repo end to end there and in the
test suite's own venv (the newest pair): compile --check, dbt deps, dbt build, a training set,
sync, an online read. Both must give the same answers. The oldest-pair venv is cached under
.venvs/ (gitignored); a fresh clone builds it once, about two minutes with pip's cache empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from featurehouse.cli.app import main
from support.wheel_build import CHECKOUT, build_wheel

pytestmark = pytest.mark.slow

OLDEST = ["dbt-core==1.8.10", "dbt-duckdb==1.8.4", "duckdb==1.1.3"]

TRAINING_SET = """\
import sys
import pandas as pd
from featurehouse import FeatureStore
labels = pd.read_csv("seeds/driver_labels.csv", parse_dates=["event_timestamp"])
df = FeatureStore(".").get_historical_features(entity_df=labels, features="driver_activity").to_df()
df.sort_values("request_id").to_csv(sys.argv[1], index=False, float_format="%.6g")
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _oldest_venv(wheel: Path) -> Path:
    """A venv with the oldest supported pair (cached) and this checkout's wheel (installed every run)."""
    # rebuilt when the pins, the Python or featurehouse's own requirements change
    requirements = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256(" ".join([*OLDEST, *requirements, sys.version]).encode()).hexdigest()[:12]
    venv = CHECKOUT / ".venvs" / f"oldest-dbt-{key}"
    ready = venv / ".complete"
    if not ready.is_file():
        for stale in venv.parent.glob("oldest-dbt-*"):  # other pins, or a half-built one
            shutil.rmtree(stale, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], CHECKOUT)
        # one resolve with featurehouse's own requirements, so the pins must satisfy them
        _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel), *OLDEST], CHECKOUT, timeout=1800)
        ready.write_text(" ".join(OLDEST) + "\n")
    _run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)], CHECKOUT)
    return venv


def _versions(bin_dir: Path) -> dict[str, str]:
    out = _run([str(bin_dir / "python"), "-c", "import importlib.metadata as m, json; print(json.dumps("
                "{p: m.version(p) for p in ('dbt-core', 'dbt-duckdb', 'duckdb', 'featurehouse')}))"], CHECKOUT)
    return json.loads(out)


def _end_to_end(repo: Path, bin_dir: Path) -> tuple[str, dict]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    _run(["featurehouse", "compile", "--check"], repo, env)  # compiled models do not depend on the dbt version
    _run(["dbt", "deps"], repo, env)
    _run(["dbt", "build"], repo, env)
    _run(["python", "-c", TRAINING_SET, "training.csv"], repo, env)
    assert "synced 4 view(s)" in _run(["featurehouse", "sync"], repo, env)
    online = json.loads(_run(["featurehouse", "get-online-features", "-f", "driver_hourly_stats",
                              *[arg for d in range(1001, 1011) for arg in ("-e", f"driver_id={d}")]], repo, env))
    return (repo / "training.csv").read_text(), online


def test_oldest_and_newest_supported_pair_give_the_same_answers(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "wheel")
    old_bin = _oldest_venv(wheel) / "bin"
    new_bin = Path(sys.executable).parent
    old, new = _versions(old_bin), _versions(new_bin)
    assert old["dbt-core"].startswith("1.8.") and old["duckdb"].startswith("1.1."), old
    assert new["dbt-core"].startswith("1.11."), new  # the newest pyproject.toml accepts
    assert old["featurehouse"] == new["featurehouse"]

    seed = tmp_path / "seed"
    result = CliRunner().invoke(main, ["init", str(seed)])  # one set of example data for both
    assert result.exit_code == 0, result.output
    answers = {}
    for name, bin_dir in (("oldest", old_bin), ("newest", new_bin)):
        repo = tmp_path / name / "rides"
        shutil.copytree(seed, repo)
        answers[name] = _end_to_end(repo, bin_dir)
    old_training, old_online = answers["oldest"]
    new_training, new_online = answers["newest"]
    assert old_training.count("\n") == 1001  # header + every label row
    assert old_training == new_training
    assert old_online == new_online
    assert old_online["conv_rate"][-1] is None and old_online["conv_rate"][0] is not None  # 1010 expired
