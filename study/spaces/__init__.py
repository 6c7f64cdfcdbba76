"""Search spaces by name: `get_space(name)` gives a Space (parse, sample, build, complexity).

Each space is one folder here whose class registers itself in SPACES; importing this package imports
every such folder, so adding a space edits nothing outside its folder (and its conf/space/<name>.yaml). Nothing here imports torch at import time (networks are built lazily).
"""

from study.spaces.base import (
    SPACES,
    Cell,
    NetShape,
    Space,
    SpaceError,
    cell_id,
    describe,
    draw,
    get_space,
)

import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):  # registration side effect of every space folder
    if _module.ispkg:
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SPACES", "Cell", "NetShape", "Space", "SpaceError", "cell_id", "describe", "draw", "get_space"]
