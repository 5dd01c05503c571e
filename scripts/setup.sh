#!/usr/bin/env bash
# Installs what nbtrack needs into ./.venv (idempotent; quick when everything is there).
#   scripts/setup.sh          the package, PyTorch (CPU) and the demo's needs
#   scripts/setup.sh --test   also test tools, Chromium and PostgreSQL (Debian packages)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$want_test" = 1 ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
  fi
fi

command -v node >/dev/null || { echo "setup: Node.js (>= 18) is needed to build the JupyterLab extension" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
# Pinned: an unpinned torch pulls the CUDA build (gigabytes); 2.13.0 is a CPU wheel here.
if ! $py -c "import torch" 2>/dev/null; then
  $py -m pip install -q torch==2.13.0
fi
extras="[demo]"
# The test suite also trains with the frameworks nbtrack integrates with (Lightning,
# Transformers, scikit-learn): torch stays pinned in the same command, or pip may swap it.
[ "$want_test" = 1 ] && extras="[demo,test,frameworks]"
# Builds the lab extension into the package (hatch-jupyter-builder runs jlpm in labextension/).
$py -m pip install -q torch==2.13.0 -e ".${extras}"
