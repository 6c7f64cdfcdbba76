"""Names shared by every space, taken from `study.spaces.base` once it exists, else from today's modules.

The fallback keeps this folder importable before the spaces package lands; the integrator may drop it and
import from `study.spaces.base` directly.
"""

from __future__ import annotations

try:
    from study.spaces.base import NetShape, SpaceError, cell_id
except ImportError:  # before the spaces package: the same names at their old locations
    from study.sampler import NetShape
    from study.space import SpaceError, cell_id

__all__ = ["NetShape", "SpaceError", "cell_id"]
