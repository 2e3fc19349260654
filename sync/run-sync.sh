#!/usr/bin/env bash
# What cron and the systemd timer run: refresh the online models, then `featurehouse sync`.
#
#   sync/run-sync.sh [featurehouse sync options, e.g. --views driver_hourly_stats]
#
# Environment (all optional):
#   FEATUREHOUSE_REPO        the feature repo (default: the folder above this script)
#   FEATUREHOUSE_BIN         folder holding `featurehouse` and `dbt` (default: REPO/.venv/bin if
#                            it exists, else whatever PATH finds; cron's PATH is short)
#   FEATUREHOUSE_DBT_BUILD   1 (default): `dbt build --select "$FEATUREHOUSE_DBT_SELECT"` first;
#                            0: dbt runs elsewhere (Airflow, dbt Cloud), only sync here
#   FEATUREHOUSE_DBT_SELECT  default "+online_*": the online snapshot models and what they read
#   FEATUREHOUSE_LOG         default REPO/logs/sync.log (appended; also printed, for cron's mail)
#   FEATUREHOUSE_LOCK        default REPO/logs/run-sync.lock
#
# Exit status: 0 done; 1 dbt build or sync failed (the log says which; a failed build skips
# the sync, so the online store keeps its last good rows); 75 the previous run still holds
# the lock, so this one did nothing (runs never pile up). `featurehouse sync` itself also
# holds a lock in the online store, which covers syncs started from other machines.
set -uo pipefail

repo="${FEATUREHOUSE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$repo" || { echo "run-sync: error: cannot enter the feature repo $repo" >&2; exit 1; }
if [ -n "${FEATUREHOUSE_BIN:-}" ]; then
  PATH="$FEATUREHOUSE_BIN:$PATH"
elif [ -x .venv/bin/featurehouse ]; then
  PATH="$PWD/.venv/bin:$PATH"
fi
export PATH
log="${FEATUREHOUSE_LOG:-$repo/logs/sync.log}"
lock="${FEATUREHOUSE_LOCK:-$repo/logs/run-sync.lock}"
mkdir -p "$(dirname "$log")" "$(dirname "$lock")"

say() { echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ') run-sync[$$]: $*" | tee -a "$log"; }
fail() { say "error: $*"; echo "run-sync: $*" >&2; }  # stderr: what cron mails

if command -v flock >/dev/null 2>&1; then
  exec 9>>"$lock"
  if ! flock -n 9; then
    fail "the previous run still holds $lock; skipped this one"
    exit 75
  fi
else
  say "flock not found (util-linux): runs are not serialised here; featurehouse sync's own lock still is"
fi

for tool in featurehouse dbt; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    fail "'$tool' is not on PATH ($PATH); set FEATUREHOUSE_BIN to the folder that holds it"
    exit 1
  fi
done

started=$SECONDS
say "start in $repo"
if [ "${FEATUREHOUSE_DBT_BUILD:-1}" != 0 ]; then
  if [ -f packages.yml ] && [ ! -d dbt_packages ]; then  # a fresh clone or deploy
    say "dbt deps"
    dbt deps --log-format text --no-use-colors 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
      fail "dbt deps failed (exit $status); not syncing"
      exit 1
    fi
  fi
  select="${FEATUREHOUSE_DBT_SELECT:-+online_*}"
  say "dbt build --select $select"
  dbt build --select "$select" --log-format text --no-use-colors 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    fail "dbt build failed (exit $status); not syncing, the online store keeps its last rows"
    exit 1
  fi
fi
say "featurehouse sync $*"
featurehouse sync "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  fail "featurehouse sync failed (exit $status)"
  [ "$status" -eq 75 ] && exit 75  # a sync from elsewhere holds the online store's lock
  exit 1
fi
say "done in $((SECONDS - started)) s"
