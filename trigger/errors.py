"""Expected failures: bad input, a missing tool, a design the flow cannot build.

The CLI prints exactly these as one line and exits 2; anything else is a bug and
keeps its traceback. ``TriggerError`` is a ``ValueError`` so that library users
who already catch ``ValueError`` around our calls keep working.
"""

from __future__ import annotations

from pathlib import Path


class TriggerError(ValueError):
    """An expected failure with a one-line message naming the culprit (file, layer, field)."""


class ConfigError(TriggerError):
    """A trigger.yml, budget or command-line setting is wrong."""


class ModelError(TriggerError):
    """A model file cannot be read, or holds something the flow does not support."""


class FirmwareModelError(TriggerError):
    """A firmware model (the IR) is inconsistent: shapes, formats or constants."""


class BundleError(TriggerError):
    """A bundle folder is missing, incomplete or changed since it was built."""


class BundleChanged(BundleError):
    """The bundle is not what its manifest hashed, or its copies disagree: a check of the design failed (exit 1,
    not bad input)."""


class ToolError(TriggerError):
    """An external tool (compiler, simulator, synthesis) is missing or failed."""


class Terminated(BaseException):
    """SIGTERM (what `timeout` and a cancelled CI job send), raised where the command is, so that it
    unwinds like a failure: partial bundles, temporary folders and child processes go."""


_stop: type[BaseException] | None = None  # the stop a signal asked for in this process (see request_stop)


def request_stop(kind: type[BaseException]) -> None:
    """Remember that a signal asked this process to stop (``Terminated`` or ``KeyboardInterrupt``). The handler
    also raises it, but an exception raised while Python runs a weakref callback or a destructor is only
    printed ("Exception ignored in ...") and the work goes on: ``check_stop`` before committing it."""
    global _stop
    _stop = kind


def clear_stop() -> None:
    global _stop
    _stop = None


def check_stop() -> None:
    """Raise the stop a signal asked for, if any: called before work is renamed into place."""
    if _stop is not None:
        raise _stop()
