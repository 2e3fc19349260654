#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (DuckDB warehouse, SQLite online store):
# example data -> featurehouse compile -> dbt build -> a training set -> sync -> an online read.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== featurehouse example-data"; featurehouse example-data
echo "== featurehouse compile";      featurehouse compile
echo "== dbt build";                 dbt build --quiet --log-format text
echo "== training set";              python scripts/demo_training_set.py
echo "== featurehouse sync";         featurehouse sync
echo "== featurehouse get-online-features"
featurehouse get-online-features -f driver_hourly_stats:conv_rate -f driver_hourly_stats:acc_rate \
  -f driver_hourly_stats:avg_daily_trips -e driver_id=1001 -e driver_id=1010
