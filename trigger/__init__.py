"""trigger: quantized networks and look-up-table regressors to bit-exact FPGA trigger firmware."""

__version__ = "0.1.0"

# Before any module imports TensorFlow: its C++ start-up lines and Keras' warnings are not for
# the user's terminal (trigger/quiet.py lists them; set TF_CPP_MIN_LOG_LEVEL=0 to see them).
from trigger import quiet as _quiet

_quiet.install()
