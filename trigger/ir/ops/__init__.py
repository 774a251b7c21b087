"""Every op kind, one module each; importing this package imports (and so registers) them all.

A new op is a new module here with an ``@register``-ed class: nothing else to list.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
