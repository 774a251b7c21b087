#!/usr/bin/env bash
# Creates .venv-da4ml with da4ml (pinned) for scripts/bench_da4ml.py; quick when already done.
# da4ml 0.6 needs numpy>=2 and the project's stack (TensorFlow 2.14, hls4ml 1.3) needs numpy<2,
# so da4ml lives in its own venv and is only ever run as a subprocess (scripts/da4ml_emit.py).
set -euo pipefail
cd "$(dirname "$0")/.."

DA4ML_VERSION=0.6.0
NAME=setup_da4ml
VENV=.venv-da4ml
STAMP="$VENV/.setup-da4ml-$DA4ML_VERSION"
source scripts/side_venv.sh

if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import da4ml, sys; sys.exit(da4ml.__version__ != '$DA4ML_VERSION')" 2>/dev/null; then
  echo "setup_da4ml: $VENV has da4ml $DA4ML_VERSION"
  exit 0
fi

find_python 3.10 "da4ml needs Python 3.10 or newer" python3.11 python3.12 python3.13 python3.10 python3
make_venv
echo "setup_da4ml: installing da4ml==$DA4ML_VERSION into $VENV"
pip_install "da4ml==$DA4ML_VERSION"
"$VENV/bin/python" -c "import da4ml; print('setup_da4ml: da4ml', da4ml.__version__, 'ready in $VENV')"
touch "$STAMP"
