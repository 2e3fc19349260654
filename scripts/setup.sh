#!/usr/bin/env bash
# Create .venv (if missing) and install featurehouse with everything its tests need.
# Idempotent and quiet: pip runs only when .venv is new, when pyproject.toml or setup.py
# changed since the last install (a stamp in .venv records their hash), or when a check
# import fails (an install someone broke by hand); otherwise it prints nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.featurehouse-setup
wanted="$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1) $(.venv/bin/python -V 2>&1)"
# every distribution the suite needs, and featurehouse importable from this checkout; checked
# without importing them, so that a second run stays fast
check='import importlib.metadata as m, importlib.util as u, pathlib, sys
names = "featurehouse dbt-core dbt-duckdb dbt-postgres duckdb psycopg redis fastapi uvicorn orjson pytest hypothesis httpx dbt-spark pyspark"
missing = []
for name in names.split():
    try:
        m.version(name)
    except m.PackageNotFoundError:
        missing.append(name)
spec = u.find_spec("featurehouse")
if spec is None or pathlib.Path(spec.origin).parent != pathlib.Path("featurehouse").resolve():
    missing.append("featurehouse from this checkout")
sys.exit(f"missing: {missing}" if missing else 0)'
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && .venv/bin/python -I -c "$check" 2>/dev/null; then
  exit 0
fi
# Spark (the `spark` extra, tests marked `spark`) runs on a JVM: Debian's Java 17 when none is there
if ! command -v java >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if ! { command -v apt-get >/dev/null 2>&1 \
         && $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }; then
    echo "Error: the Spark tests need Java 17 and it could not be installed here; install openjdk-17-jre-headless (Debian, Ubuntu) or any Java 17 and run this again." >&2
    exit 1
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# setuptools says "Editable installation ... careful with folders named like the package" on
# every editable install, whatever the layout: a notice, not a problem. Other warnings still show.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -I -c "$check"
echo "$wanted" > "$stamp"
