"""The sub-commands of ``nnx-build``; each module registers its commands on :data:`app.app`.

Importing this package registers them all, in the order ``--help`` lists them. The
options they share live in :mod:`nnx_build.commands.options`; no module here imports
``nnx_build.cli`` (which imports this package). Modules import heavy dependencies inside
their command functions only.
"""

import importlib
import pkgutil

# modules that define commands, in the order of ``nnx-build --help``; any other module
# here is registered after them
ORDER = ("build", "export", "train", "spectest", "bench", "graph", "weights")
_SUPPORT = ("app", "options")

for _name in [*ORDER, *sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in ORDER + _SUPPORT)]:
    importlib.import_module(f"{__name__}.{_name}")
