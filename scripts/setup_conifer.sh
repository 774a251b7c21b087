#!/usr/bin/env bash
# Installs what scripts/bench_conifer.py needs, and nothing `make test` needs: GHDL (to simulate
# conifer's VHDL), nlohmann-json3-dev (the JSON headers conifer's C++ backend includes and its wheel
# lacks), and conifer + xgboost-cpu into the project's venv (pinned: pyproject's `conifer` extra).
# Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

CONIFER_VERSION=1.11
XGBOOST_VERSION=3.2.0
PY=.venv/bin/python

if ! command -v ghdl >/dev/null 2>&1 || [ ! -f /usr/include/nlohmann/json.hpp ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=""; fi
  echo "setup_conifer: installing ghdl and nlohmann-json3-dev (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ghdl nlohmann-json3-dev >/dev/null
fi
if ! "$PY" -c "import conifer, xgboost, sys; sys.exit(str(conifer.__version__) != '$CONIFER_VERSION' or xgboost.__version__ != '$XGBOOST_VERSION')" 2>/dev/null; then
  echo "setup_conifer: installing conifer==$CONIFER_VERSION xgboost-cpu==$XGBOOST_VERSION into .venv"
  "$PY" -m pip install --quiet --disable-pip-version-check "conifer==$CONIFER_VERSION" "xgboost-cpu==$XGBOOST_VERSION"
fi
echo "setup_conifer: $(ghdl --version | head -1); conifer $("$PY" -c 'import conifer; print(conifer.__version__)'); xgboost $("$PY" -c 'import xgboost; print(xgboost.__version__)')"
