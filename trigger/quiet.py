"""Keep TensorFlow's, Keras' and hls4ml's start-up and serialisation noise off the user's terminal.

``install()`` runs when ``trigger`` is imported (``trigger/__init__.py``), before
anything imports TensorFlow, because TensorFlow's C++ log level is read from the
environment when it loads. It only sets defaults: an environment variable the user
has set, or a logger level the user has configured, is left alone, so
``TF_CPP_MIN_LOG_LEVEL=0 trigger build ...`` shows everything again.

What it silences (TensorFlow 2.14, Keras 2.14, QKeras 0.9 on a machine without a GPU):
- C++ start-up lines: "Could not find cuda drivers", "Unable to register cuDNN/cuFFT/cuBLAS
  factory", the CPU-feature (AVX2 FMA) banner, "TF-TRT Warning: Could not find TensorRT",
  the oneDNN notice (``TF_CPP_MIN_LOG_LEVEL=3``);
- oneDNN custom operations, which also change float results slightly from one CPU to another
  (``TF_ENABLE_ONEDNN_OPTS=0``: training gives the same weights on every machine);
- the Python loggers ``tensorflow`` and ``absl`` (Keras and QKeras log through absl) below ERROR;
- Keras' UserWarnings about serialising QKeras quantizers as constraints/initializers and about
  the legacy HDF5 format.

``quiet_stdout()`` wraps calls into libraries that ``print`` (hls4ml's converters).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings

ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ logging: FATAL only
    "TF_ENABLE_ONEDNN_OPTS": "0",  # no oneDNN notice, and the same float results on every CPU
}

# (message regex, category) of Python warnings that tell a trigger user nothing they can act on.
WARNINGS = [
    # Keras 2.14 serialising a QKeras quantizer passed as kernel_constraint etc.
    (r"The `keras\.\w+\.serialize\(\)` API should only be used for objects of type", UserWarning),
    # Keras 2.14 model.save("x.h5")
    (r"You are saving your model as an HDF5 file via `model\.save\(\)`", UserWarning),
]

_installed = False


def install() -> None:
    """Set the quiet defaults once per process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for message, category in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    logger = logging.getLogger("tensorflow")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    # absl installs its own logger class when it is imported, so its logger must not be created
    # before that: import it (a pure-Python dependency of TensorFlow, quick) and set the level then.
    try:
        from absl import logging as absl_logging
    except ImportError:  # not installed: nothing logs through it
        return
    absl_logger = absl_logging.get_absl_logger()
    if absl_logger.level == logging.NOTSET:
        absl_logger.setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet_stdout(fd: bool = False):
    """Swallow what the body prints to stdout.

    ``fd=False`` redirects Python's ``sys.stdout`` (enough for hls4ml's ``print`` calls);
    ``fd=True`` also redirects the process' file descriptor 1, for C/C++ code and child
    processes that inherit it (a compiler run with ``os.system``). When the body raises
    something other than a ``TriggerError`` (that is, a bug), what was swallowed is written
    to stderr before the exception propagates, so nothing needed for debugging is lost.
    """
    from trigger.errors import TriggerError

    buffer = io.StringIO()
    saved_fd = None
    capture = None
    if fd:
        sys.stdout.flush()
        capture = tempfile.TemporaryFile(mode="w+b")
        saved_fd = os.dup(1)
        os.dup2(capture.fileno(), 1)
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    except TriggerError:
        raise
    except Exception:
        _replay(buffer, capture, saved_fd)
        saved_fd = None
        raise
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        if capture is not None:
            capture.close()


def _replay(buffer: io.StringIO, capture, saved_fd) -> None:
    if saved_fd is not None:
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
    text = buffer.getvalue()
    if capture is not None:
        capture.seek(0)
        text = capture.read().decode(errors="replace") + text
    if text:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()
