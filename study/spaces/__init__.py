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
    benchmark_of,
    cell_id,
    describe,
    draw,
    get_space,
    searchable,
)

from study.registry import import_members

import_members(__name__, __path__, packages_only=True)  # every space folder registers itself

__all__ = ["SPACES", "Cell", "NetShape", "Space", "SpaceError", "benchmark_of", "cell_id", "describe", "draw", "get_space", "searchable"]
