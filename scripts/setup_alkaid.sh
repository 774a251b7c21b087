#!/usr/bin/env bash
# Creates .venv-alkaid with alkaid (pinned: the newest release PyPI serves) for scripts/bench_da4ml.py; quick when
# already done. alkaid, da4ml's successor, needs numpy>=2 like da4ml 0.6, and the project's stack (TensorFlow 2.14,
# hls4ml 1.3) needs numpy<2, so alkaid lives in its own venv and only ever runs as a subprocess
# (scripts/alkaid_emit.py). Never install it into .venv: `make test` does not depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."

ALKAID_VERSION=0.8.2
VENV=.venv-alkaid
STAMP="$VENV/.setup-alkaid-$ALKAID_VERSION"

installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('alkaid') != '$ALKAID_VERSION')" 2>/dev/null
}
if [ -f "$STAMP" ] && installed; then
  echo "setup_alkaid: $VENV has alkaid $ALKAID_VERSION"
  exit 0
fi

python=""
for candidate in "${PYTHON:-}" python3.12 python3.11 python3.13 python3.10 python3; do
  [ -n "$candidate" ] || continue
  command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c 'import sys; sys.exit(not sys.version_info[:2] >= (3, 10))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup_alkaid: error: alkaid needs Python 3.10 or newer; set PYTHON=/path/to/python3" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_alkaid: creating $VENV with $("$python" --version)"
  "$python" -m venv "$VENV"
fi
echo "setup_alkaid: installing alkaid==$ALKAID_VERSION into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "alkaid==$ALKAID_VERSION"
installed || { echo "setup_alkaid: error: alkaid $ALKAID_VERSION did not install into $VENV" >&2; exit 1; }
echo "setup_alkaid: alkaid $ALKAID_VERSION ready in $VENV"
touch "$STAMP"
