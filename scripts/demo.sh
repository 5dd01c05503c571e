#!/usr/bin/env bash
# Set up, then run the quickstart notebook headless against MLflow's default local store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python scripts/run_demo.py "$@"
