#!/usr/bin/env bash
# Creates .venv-da4ml with da4ml (pinned) for scripts/bench_da4ml.py; quick when already done.
# da4ml 0.6 needs numpy>=2 and the project's stack (TensorFlow 2.14, hls4ml 1.3) needs numpy<2,
# so da4ml lives in its own venv and is only ever run as a subprocess (scripts/da4ml_emit.py).
set -euo pipefail
cd "$(dirname "$0")/.."

DA4ML_VERSION=0.6.0
VENV=.venv-da4ml
STAMP="$VENV/.setup-da4ml-$DA4ML_VERSION"

if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import da4ml, sys; sys.exit(da4ml.__version__ != '$DA4ML_VERSION')" 2>/dev/null; then
  echo "setup_da4ml: $VENV has da4ml $DA4ML_VERSION"
  exit 0
fi

python=""
for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
  [ -n "$candidate" ] || continue
  command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c 'import sys; sys.exit(not sys.version_info[:2] >= (3, 10))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup_da4ml: error: da4ml needs Python 3.10 or newer; set PYTHON=/path/to/python3" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_da4ml: creating $VENV with $("$python" --version)"
  "$python" -m venv "$VENV"
fi
echo "setup_da4ml: installing da4ml==$DA4ML_VERSION into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "da4ml==$DA4ML_VERSION"
"$VENV/bin/python" -c "import da4ml; print('setup_da4ml: da4ml', da4ml.__version__, 'ready in $VENV')"
touch "$STAMP"
