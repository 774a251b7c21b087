"""trigger: quantized networks and look-up-table regressors to bit-exact FPGA trigger firmware.

The Python API (``trigger.api``), for notebooks and scripts::

    import trigger
    design = trigger.convert("qkeras_3layer.json", precision="fixed<16,6>")  # a file, folder or Keras model
    y = design.predict(x)               # the firmware, bit for bit, on float events
    design.compare(x)                   # the model vs the firmware, layer by layer
    bundle = design.build("build/tagger")
    trigger.verify(bundle)              # emulator == C simulation == RTL: the dict verify.json holds
    trigger.report(bundle, data="events.npz")   # resources, latency, physics: the dict report.json holds

``trigger.verify`` and ``trigger.report`` are also the modules of those steps (``trigger.verify.verify_bundle``,
``trigger.report.build_report``); calling them runs the step. TensorFlow and hls4ml load only when used.
"""

from __future__ import annotations

import sys as _sys
import types as _types

__version__ = "0.1.0"

# Before any module imports TensorFlow: its C++ start-up lines and Keras' warnings are not for
# the user's terminal (trigger/quiet.py lists them; set TF_CPP_MIN_LOG_LEVEL=0 to see them).
from trigger import quiet as _quiet

_quiet.install()

__all__ = ["convert", "Design", "verify", "report", "__version__"]

# The API's steps named like the modules that implement them: a module trigger.verify / trigger.report
# is made callable (calling it runs trigger.api.verify / trigger.api.report), so that `trigger.verify(bundle)`
# works whether or not the module was imported before, and `from trigger.verify import verify_bundle` as ever.
_CALLABLE_MODULES = {"verify": "verify", "report": "report"}


class _StepModule(_types.ModuleType):
    """A module that is also the API function of its step."""

    def __call__(self, *args, **kwargs):
        from trigger import api

        return getattr(api, _CALLABLE_MODULES[self.__name__.rpartition(".")[2]])(*args, **kwargs)


class _Package(_types.ModuleType):
    def __setattr__(self, name, value):
        if name in _CALLABLE_MODULES and isinstance(value, _types.ModuleType) and type(value) is _types.ModuleType:
            value.__class__ = _StepModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):  # lazy: `import trigger` does not import TensorFlow, hls4ml or the flow
    if name in ("convert", "Design", "LayerComparison"):
        from trigger import api

        return getattr(api, name)
    if name in _CALLABLE_MODULES:
        import importlib

        return importlib.import_module(f"trigger.{name}")
    raise AttributeError(f"module 'trigger' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "convert", "Design", "verify", "report"])
