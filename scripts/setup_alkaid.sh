#!/usr/bin/env bash
# Creates .venv-alkaid with alkaid (pinned: the newest release PyPI serves) for scripts/bench_da4ml.py; quick when
# already done. alkaid, da4ml's successor, needs numpy>=2 like da4ml 0.6, and the project's stack (TensorFlow 2.14,
# hls4ml 1.3) needs numpy<2, so alkaid lives in its own venv and only ever runs as a subprocess
# (scripts/alkaid_emit.py). Never install it into .venv: `make test` does not depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."

ALKAID_VERSION=0.8.2
NAME=setup_alkaid
VENV=.venv-alkaid
STAMP="$VENV/.setup-alkaid-$ALKAID_VERSION"
source scripts/side_venv.sh

if [ -f "$STAMP" ] && has_versions "alkaid==$ALKAID_VERSION"; then
  echo "setup_alkaid: $VENV has alkaid $ALKAID_VERSION"
  exit 0
fi

find_python 3.10 "alkaid needs Python 3.10 or newer" python3.12 python3.11 python3.13 python3.10 python3
make_venv
echo "setup_alkaid: installing alkaid==$ALKAID_VERSION into $VENV"
pip_install "alkaid==$ALKAID_VERSION"
has_versions "alkaid==$ALKAID_VERSION" || { echo "setup_alkaid: error: alkaid $ALKAID_VERSION did not install into $VENV" >&2; exit 1; }
echo "setup_alkaid: alkaid $ALKAID_VERSION ready in $VENV"
touch "$STAMP"
