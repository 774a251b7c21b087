#!/usr/bin/env bash
# Checks that trigger works as an installed package, not only from this checkout:
#   1. builds the wheel from a clean copy of the working tree (no stale build/lib);
#   2. installs it with the pinned stack (requirements.lock) into a fresh venv;
#   3. from an empty folder outside the checkout: `trigger --help`, `trigger doctor`, checks that the
#      templates, the cocotb testbench and the examples are found as package data in site-packages,
#      then builds and verifies a network.
# Usage: scripts/check_wheel.sh [--no-flow]   (--no-flow: skip step 3's build and verify)
# Environment: MODEL (default ../shared/reference_models/qkeras_3layer.json, else the built-in
# jet_tagger example), VECTORS (default 300), KEEP=1 keeps the temporary folder.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
FLOW=1
[ "${1:-}" = "--no-flow" ] && FLOW=0
VECTORS="${VECTORS:-300}"
MODEL="${MODEL:-$ROOT/../shared/reference_models/qkeras_3layer.json}"

[ -x "$PY" ] || { echo "check_wheel: error: $PY not found: run make setup first" >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/trigger-wheel.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "check_wheel: kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
step() { echo; echo "== check_wheel [${SECONDS}s]: $*"; }
# pip warns once per package about configured local index folders that do not exist on this machine.
pip_noise() { grep -v "^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$" >&2 || true; }

step "copy the working tree (tracked and untracked files, not the ignored ones) to $WORK/src"
mkdir -p "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
   | while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done \
   | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"

step "build the wheel"
"$PY" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$WORK/dist" "$WORK/src" 2> >(pip_noise)
WHEEL="$(ls "$WORK"/dist/trigger-*.whl)"
ls -l "$WHEEL"
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for prefix in ("trigger/firmware_templates/", "trigger/sim/", "trigger/models/"):
    files = [n for n in names if n.startswith(prefix)]
    print(f"  {prefix:<30} {len(files)} files")
    assert files, f"{prefix} is missing from the wheel"
EOF

step "install the wheel with the pinned stack into a fresh venv"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.lock" "$WHEEL" 2> >(pip_noise)
"$VPY" -m pip show trigger | sed -n '1,2p'

# Everything below runs outside the checkout, with nothing of it on sys.path.
RUN="$WORK/run"
mkdir -p "$RUN"
cd "$RUN"
unset PYTHONPATH
export PATH="$WORK/venv/bin:$PATH"
T="$WORK/venv/bin/trigger"

step "trigger --help (in $RUN)"
"$T" --help

step "trigger doctor"
"$T" doctor

step "package data comes from site-packages"
"$VPY" - <<'EOF'
import sysconfig
from pathlib import Path

import trigger
from trigger.resources import models_dir, sim_dir, templates_dir

site = Path(sysconfig.get_paths()["purelib"]).resolve()
assert site in Path(trigger.__file__).resolve().parents, f"trigger imported from {trigger.__file__}, not {site}"
for folder in (templates_dir(), sim_dir(), models_dir()):
    print(folder)
    assert site in folder.resolve().parents, f"{folder} is not under {site}"
assert (sim_dir() / "standard_top_tb.py").is_file()
examples = sorted(p.parent.name for p in models_dir().glob("*/trigger.yml"))
templates = sorted(templates_dir().rglob("*.j2"))
assert examples and templates
print(f"{len(templates)} templates, examples: {', '.join(examples)}")
EOF

if [ "$FLOW" = 1 ]; then
  if [ ! -f "$MODEL" ]; then
    MODEL="$("$VPY" -c 'from trigger.resources import models_dir; print(models_dir() / "jet_tagger")')"
  fi
  step "trigger build $MODEL -o qk --vectors $VECTORS"
  "$T" build "$MODEL" -o qk --vectors "$VECTORS"
  step "trigger verify qk --vectors $VECTORS"
  "$T" verify qk --vectors "$VECTORS"
fi

step "passed: the wheel installs and runs outside the checkout"
