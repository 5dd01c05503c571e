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
# Two workers (pytest-xdist): most of the suite waits on kernels, servers and browsers, so two
# run side by side on two cores (about 14 minutes instead of 22 here); each worker starts its own
# team server and JupyterLab when its tests need them. `-n 0` after it runs everything in one.
$bin/python -m pytest -n 2 --dist worksteal "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
