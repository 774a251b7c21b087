#!/usr/bin/env bash
# Creates .venv with the pinned stack (requirements.lock) and the system tools.
# TensorFlow 2.14 (the stack hls4ml 1.3 tests QKeras with) has wheels for Python 3.9-3.11 only.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_system_tools.sh

python=""
for candidate in "${PYTHON:-}" python3.11 python3.10 python3.9 python3; do
  [ -n "$candidate" ] || continue
  command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 11)))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup: error: need Python 3.9, 3.10 or 3.11 (TensorFlow 2.14 has no wheels for others); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
echo "setup: installing the pinned Python stack (requirements.lock)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
