#!/usr/bin/env bash
# Creates .venv-keras3: Keras 3 (JAX backend, CPU) and QKeras for Keras 3 (PyPI `qkeras-v3`, whose
# quantized_bits has the arguments newer QKeras added: post_training_scale, elements_per_scale,
# min_po2_exponent, max_po2_exponent), pinned, for scripts/make_keras3_archive.py, which writes the
# .keras archives in tests/data/keras3/ with Keras 3's own saving code. Nothing `make test` needs:
# the tests read the committed files. Kept apart from .venv (TensorFlow 2.14 needs Keras 2 and
# QKeras 0.9) so neither stack constrains the other. Quick when already done.
#
# qkeras-v3 is installed without its declared dependencies: it lists tensorflow and
# tensorflow-model-optimization, which only some of its modules use; the quantizers and layers the
# script saves run on any Keras 3 backend (KERAS_BACKEND=jax, set by the script).
set -euo pipefail
cd "$(dirname "$0")/.."

KERAS_VERSION=3.15.1
QKERAS_V3_VERSION=1.2.1
JAX_VERSION=0.10.2
NUMPY_VERSION=2.3.5
H5PY_VERSION=3.16.0
NAME=setup_keras3
VENV=.venv-keras3
PY=$VENV/bin/python
source scripts/side_venv.sh

find_python 3.11 "Keras $KERAS_VERSION / jax $JAX_VERSION need Python 3.11 or newer (jax 0.11+ needs 3.12: 0.10.2 is the newest for 3.11)" \
  python3.11 python3.12 python3.13 python3.10 python3
make_venv
if ! has_versions "keras==$KERAS_VERSION" "qkeras-v3==$QKERAS_V3_VERSION" "jax==$JAX_VERSION"; then
  echo "setup_keras3: installing keras==$KERAS_VERSION qkeras-v3==$QKERAS_V3_VERSION jax==$JAX_VERSION into $VENV"
  pip_install "keras==$KERAS_VERSION" "jax[cpu]==$JAX_VERSION" \
    "numpy==$NUMPY_VERSION" "h5py==$H5PY_VERSION" six scipy networkx scikit-learn pyparsing tqdm
  pip_install --no-deps "qkeras-v3==$QKERAS_V3_VERSION"
fi
KERAS_BACKEND=jax "$PY" -c "import keras, qkeras, jax; print(f'setup_keras3: keras {keras.__version__} ({keras.backend.backend()}), qkeras-v3 {qkeras.__version__}, jax {jax.__version__}')"
