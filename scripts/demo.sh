#!/usr/bin/env bash
# The main job, end to end, on the embedded defaults (DuckDB warehouse, SQLite online store):
# example data -> featurehouse compile -> dbt build -> a training set -> sync -> an online read.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n== %s\n   %s\n' "$1" "$2"; }

step "featurehouse example-data" \
  "A week of hourly driver statistics and daily customer profiles, ending now; driver 1010 stopped reporting two days ago."
featurehouse example-data

step "featurehouse compile" "feature_specs/*.yml -> dbt models under models/featurehouse/ (unchanged models are not rewritten)."
featurehouse compile

step "dbt build" "Seeds, the feature views, the training set and the online snapshots, in DuckDB (data/warehouse.duckdb)."
dbt_log="$(mktemp)"
if ! dbt build --log-format text --no-use-colors >"$dbt_log" 2>&1; then
  cat "$dbt_log"; rm -f "$dbt_log"; exit 1
fi
grep -E "Finished running|Done\. PASS" "$dbt_log" | sed 's/^[0-9:]* *//'
rm -f "$dbt_log"

step "training set" "Each label row with the features as of its own timestamp (point in time): no value from the future."
python scripts/demo_training_set.py

step "featurehouse sync" "The latest value of every feature, per entity, into the SQLite online store (data/online.db)."
featurehouse sync

step "featurehouse get-online-features" \
  "Driver 1001 has recent values; driver 1010's are null: its last row is two days old and the view's ttl is one day."
featurehouse get-online-features -f driver_hourly_stats:conv_rate -f driver_hourly_stats:acc_rate \
  -f driver_hourly_stats:avg_daily_trips -e driver_id=1001 -e driver_id=1010

step "featurehouse retrieve-online-documents" \
  "The 3 articles nearest 'bake with flour and butter' (the example's hashed bag-of-words embeddings, searched in SQLite)."
query="$(python -c 'import json; from featurehouse.cli.example_documents import embed_text; print(json.dumps(embed_text("bake with flour and butter")))')"
featurehouse retrieve-online-documents -f documents:title -f documents:topic -q "$query" -k 3
