#!/usr/bin/env bash
# Set up (including Chromium and PostgreSQL), then run every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export MLFLOW_DISABLE_TELEMETRY=true
bin=.venv/bin
echo "== ruff"
$bin/ruff check .
$bin/ruff format --check .
echo "== mypy"; $bin/mypy
echo "== TypeScript unit tests"; (cd labextension && PATH="$PWD/../$bin:$PATH" jlpm test)
echo "== pytest"
set +e
$bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
