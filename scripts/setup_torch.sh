#!/usr/bin/env bash
# Creates .venv-torch: PyTorch (CPU build), Brevitas and ONNX, pinned, for
# scripts/export_onnx_test_models.py, which writes the exported test models in tests/data/onnx/.
# Nothing `make test` needs: the tests read the committed files. Kept apart from .venv (TensorFlow,
# hls4ml) so neither stack constrains the other. Quick when already done.
#
# torch: 2.13.0. On this project's machines pip finds a CPU-only wheel of it (torch-2.13.0+cpu,
# 192 MB) in its local wheel folder; elsewhere `torch==2.13.0` from PyPI is the CUDA build (several
# GB of nvidia-* wheels, which run on the CPU just the same). PyPI offers no CPU-only x86_64 wheel
# by name, and --index-url to PyTorch's own index is not reachable here.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
BREVITAS_VERSION=0.13.4
ONNX_VERSION=1.18.0
ONNXSCRIPT_VERSION=0.6.2  # torch.onnx.export's default (dynamo) exporter
ONNXOPTIMIZER_VERSION=0.4.2  # brevitas' QONNX export
NUMPY_VERSION=2.3.5
VENV=.venv-torch
PYTHON=${PYTHON:-python3.11}
PY=$VENV/bin/python

if [ ! -x "$PY" ]; then
  echo "setup_torch: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
want="import torch, brevitas, onnx, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' \
or brevitas.__version__ != '$BREVITAS_VERSION' or onnx.__version__ != '$ONNX_VERSION'); import onnxoptimizer, onnxscript"
if ! "$PY" -c "$want" 2>/dev/null; then
  echo "setup_torch: installing torch==$TORCH_VERSION brevitas==$BREVITAS_VERSION onnx==$ONNX_VERSION into $VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION"
  "$PY" -m pip install --quiet --disable-pip-version-check "brevitas==$BREVITAS_VERSION" "onnx==$ONNX_VERSION" \
    "onnxscript==$ONNXSCRIPT_VERSION" "onnxoptimizer==$ONNXOPTIMIZER_VERSION" "torch==$TORCH_VERSION"
fi
"$PY" -c "import torch, brevitas, onnx, numpy; print(f'setup_torch: torch {torch.__version__}, brevitas {brevitas.__version__}, onnx {onnx.__version__}, numpy {numpy.__version__}')"
