"""Draw distinct canonical cells from a space and describe the networks a study will train."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from study.errors import UserError
from study.space import NB201Cell, cell_id, get_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetShape:
    """What fixes a network's size besides its cell: input channels and size, classes, width, depth."""

    c_in: int
    image_size: int
    n_classes: int
    width: int
    cells_per_stage: int


def available(space: str, include_degenerate: bool = False) -> list[str]:
    """Canonical keys of the space's classes that may be sampled, in a fixed order."""
    classes = get_space(space).classes()
    return [k for k, c in classes.items() if include_degenerate or not c.is_degenerate()]


def draw(space: str, n: int, seed: int, include_degenerate: bool = False) -> list[NB201Cell]:
    """`n` distinct canonical cells, uniformly at random and deterministically from `seed`.

    The draw is a seeded permutation of all classes, cut at `n`, so a smaller sample with the same seed
    is a prefix of a larger one and a study can grow without retraining.
    """
    keys = available(space, include_degenerate)
    if n > len(keys):
        kind = "cells" if include_degenerate else "non-degenerate cells"
        raise UserError(f"n={n} is more than the {len(keys)} distinct {kind} of space {space!r}; use n<={len(keys)}")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(keys))[:n]
    classes = get_space(space).classes()
    return [classes[keys[i]] for i in order]


def describe(cell: NB201Cell, shape: NetShape) -> dict[str, Any]:
    """The cells-file row of a cell: id, strings, and params/FLOPs of the supervised network on `shape`."""
    from study.network import complexity

    params, flops = complexity(cell, shape.c_in, shape.image_size, shape.width, shape.cells_per_stage, shape.n_classes)
    canonical = cell.canonical()
    return {
        "id": cell_id(canonical), "arch": cell.to_str(), "canonical": canonical,
        "nb201_key": cell.nb201_key(), "params": params, "flops": flops,
    }
