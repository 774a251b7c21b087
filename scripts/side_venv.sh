# Sourced by scripts/setup_da4ml.sh, setup_alkaid.sh, setup_hgq2.sh and setup_keras3.sh: each of those tools
# gets a venv of its own beside .venv (they need numpy 2 or Keras 3; the project's stack needs numpy 1 and
# Keras 2). The sourcing script sets NAME (the prefix of its messages) and VENV first.

# find_python MIN WHY CANDIDATE...: sets $python to the first of $PYTHON and the CANDIDATEs found on PATH that
# is Python MIN (e.g. 3.10) or newer; with none, prints "NAME: error: WHY; set PYTHON=..." and exits 1.
find_python() {
  local min=$1 why=$2 candidate
  shift 2
  python=""
  for candidate in "${PYTHON:-}" "$@"; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] < tuple(map(int, '$min'.split('.'))))"; then
      python="$candidate"
      return 0
    fi
  done
  echo "$NAME: error: $why; set PYTHON=/path/to/python3" >&2
  exit 1
}

# make_venv: creates $VENV with $python, unless it has a python already.
make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "$NAME: creating $VENV with $("$python" --version)"
    "$python" -m venv "$VENV"
  fi
}

# has_versions DIST==VERSION...: true when $VENV has every one of these distributions at exactly that version.
has_versions() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys
sys.exit(any(m.version(d) != v for d, v in (a.split('==') for a in sys.argv[1:])))" "$@" 2>/dev/null
}

# pip_install ARG...: pip install into $VENV, quietly.
pip_install() {
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
