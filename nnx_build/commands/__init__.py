"""Sub-commands living outside cli.py; each module registers its commands on ``cli.app``.

Modules here import heavy dependencies inside their command functions only.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
