#!/usr/bin/env bash
# Creates .venv-hgq2: Keras 3 (JAX backend, CPU) and HGQ2 (PyPI `hgq2`, with its `quantizers`), pinned, for
# scripts/make_hgq2_models.py, which trains the small HGQ2 models in tests/data/hgq2/ and writes their .keras
# archives and HGQ2's own predictions. Nothing `make test` needs: the tests read the committed files as data.
# Kept apart from .venv because hgq2 ships a top-level `qkeras` package that would replace QKeras 0.9 there,
# and because it needs Keras 3 (TensorFlow 2.14 needs Keras 2). Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

HGQ2_VERSION=0.2.0
QUANTIZERS_VERSION=1.2.2
KERAS_VERSION=3.15.1
JAX_VERSION=0.10.2
NUMPY_VERSION=2.3.5
H5PY_VERSION=3.16.0
NAME=setup_hgq2
VENV=.venv-hgq2
PY=$VENV/bin/python
source scripts/side_venv.sh

find_python 3.11 "Keras $KERAS_VERSION / jax $JAX_VERSION need Python 3.11 or newer" \
  python3.11 python3.12 python3.13 python3.10 python3
make_venv
if ! has_versions "hgq2==$HGQ2_VERSION" "keras==$KERAS_VERSION" "jax==$JAX_VERSION"; then
  echo "setup_hgq2: installing hgq2==$HGQ2_VERSION keras==$KERAS_VERSION jax==$JAX_VERSION into $VENV"
  pip_install "hgq2==$HGQ2_VERSION" "quantizers==$QUANTIZERS_VERSION" \
    "keras==$KERAS_VERSION" "jax[cpu]==$JAX_VERSION" "numpy==$NUMPY_VERSION" "h5py==$H5PY_VERSION" tqdm
fi
KERAS_BACKEND=jax "$PY" -c "import keras, hgq, jax, importlib.metadata as m; print(f'setup_hgq2: keras {keras.__version__} ({keras.backend.backend()}), hgq2 {m.version(\"hgq2\")}, quantizers {m.version(\"quantizers\")}, jax {jax.__version__}')"
