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
