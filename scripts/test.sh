#!/usr/bin/env bash
# The whole test suite, after installing everything it needs. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "Error: pytest collected no tests; that is a failure, not a pass." >&2
  exit 1
fi
exit "$status"
