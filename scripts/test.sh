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
# Two workers (pytest-xdist): most of the suite waits on kernels, servers and browsers, so two
# tests run side by side on two cores (about 14 minutes instead of 22 here); each worker starts
# its own team server and JupyterLab when its tests need them. Tests marked `serial` run after,
# in one process with nothing beside them. Arguments go to both runs (`-n 0` makes the first one
# process too). A run that collects nothing (exit 5) is fine only if the other ran tests.
set +e
$bin/python -m pytest -n 2 --dist worksteal --serial-tests=without "$@"
parallel=$?
echo "== pytest, the serial tests"
$bin/python -m pytest --serial-tests=only "$@"
serial=$?
set -e
if [ "$parallel" = 5 ] && [ "$serial" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
for status in "$parallel" "$serial"; do
  if [ "$status" != 0 ] && [ "$status" != 5 ]; then
    exit "$status"
  fi
done
