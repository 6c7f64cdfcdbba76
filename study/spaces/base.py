"""What a search space provides, the registry of spaces, and the helpers every space shares.

A space is a value-level description of cells (no torch at import): `parse` validates a cell string,
`sample` draws distinct canonical cells, `complexity` sizes the network, and `build` (which imports torch
lazily) makes the backbone that every objective attaches its head to through `c_out`. A new space is one
folder in study/spaces/ with a class registered by `@SPACES.register(name)` and a conf/space/<name>.yaml.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, TypeVar

import numpy as np

from study.errors import UserError
from study.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

    from study.spaces.benchmark import Benchmark

log = logging.getLogger(__name__)


class SpaceError(UserError):
    """A cell string or spec that is not a valid member of its space (or an unknown space)."""


STEMS = ("cifar", "imagenet")  # the skeleton's stem: one stride-1 conv (CIFAR), or three stride-2 convs (ImageNet)


@dataclass(frozen=True)
class NetShape:
    """What fixes a network's size besides its cell: input channels and size, classes, width, depth, stem.

    `stem="imagenet"` is the space's ImageNet skeleton (three stride-2 convolutions before the cells, as
    UnNAS trains its ImageNet networks); `depth` is the total number of cells where a space counts its depth
    that way (DARTS: 0 means 3 * cells_per_stage + 2). Spaces without such a variant refuse it.
    """

    c_in: int
    image_size: int
    n_classes: int
    width: int
    cells_per_stage: int
    stem: str = "cifar"
    depth: int = 0

    def __post_init__(self) -> None:
        where = {"c_in": "dataset.channels", "image_size": "dataset.image_size", "n_classes": "dataset.n_classes",
                 "width": "budget.width", "cells_per_stage": "budget.cells_per_stage"}
        for key, setting in where.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceError(f"{setting} must be a positive integer, got {value!r}; e.g. {setting}=8")
        if self.stem not in STEMS:
            raise SpaceError(f"budget.stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 0:
            raise SpaceError(f"budget.depth must be a non-negative integer (0: the space's own rule), got {self.depth!r}")

    def check_variants(self, space: str, stems: tuple[str, ...] = ("cifar",), depth: bool = False) -> None:
        """SpaceError when the shape asks for a stem, or a depth in cells, that the space `space` does not have."""
        if self.stem not in stems:
            raise SpaceError(f"space {space} has no {self.stem} stem; use budget.stem={stems[0]} (the paper's ImageNet "
                             "networks are DARTS' and NAS-Bench-101's)")
        if self.depth and not depth:
            raise SpaceError(f"space {space} sets its depth by budget.cells_per_stage; leave budget.depth at 0")


class Cell(Protocol):
    """A frozen, validated member of a space."""

    def to_str(self) -> str:
        """The space's string form (what cells.jsonl stores as `arch`)."""

    def canonical(self) -> str:
        """A key equal for cells that compute the same function."""

    def is_degenerate(self) -> bool:
        """True when the output does not depend on the input."""

    def keys(self) -> dict[str, str]:
        """The benchmark's own keys of the cell, written into cells.jsonl (NB201: {"nb201_key": ...})."""


class Backbone(Protocol):
    """What `Space.build` returns: a torch module mapping (B, c_in, H, W) to (B, c_out, h, w)."""

    c_out: int

    def __call__(self, x: "Tensor") -> "Tensor":
        """The last feature map."""


class Space(Protocol):
    """A search space: parse, sample, size and build its cells."""

    name: str

    def parse(self, arch: str) -> Cell:
        """The cell written `arch`; SpaceError with one clear line when it is not one."""

    def sample(self, n: int, seed: int, include_degenerate: bool = False) -> list[Cell]:
        """`n` distinct canonical cells, deterministic in `seed`; a smaller n gives a prefix."""

    def build(self, cell: Cell, shape: NetShape, plain: bool = False) -> "nn.Module":
        """The backbone (attribute `c_out`) for `cell` at `shape`; imports torch lazily.

        `plain=True` asks for one module per op, every ReLU an `nn.ReLU` (what hooks see), instead of a
        fused fast path computing the same function; spaces without a fast path ignore it.
        """

    def complexity(self, cell: Cell, shape: NetShape) -> tuple[int, int]:
        """Parameters and multiply-accumulates per image of backbone + pooled linear head to shape.n_classes."""

    # Optional, for `study.search` (a space without them is refused there in one line):
    #   supernet(shape) -> nn.Module: the skeleton with every edge a mix of all ops; attributes `c_out`,
    #       `alphas` (an nn.ParameterDict, one (edges, ops) tensor per kind of cell), `layout` (per kind,
    #       the row and column names) and `use(mixes)` (how edges mix next: study.spaces.modules.Mix).
    #   derive(alpha) -> Cell: the cell a {kind: (edges, ops) nested list} of architecture weights derives.
    #   truth(cell) -> dict | None: the benchmark's own accuracies of the cell, where the space has them.


# Registered: a class or factory that takes no arguments and returns a Space.
SPACES: Registry[Callable[[], Space]] = Registry("space", SpaceError)


def searchable(name: str) -> Space:
    """The space registered as `name`, if it has a supernet and derives cells; SpaceError saying so otherwise."""
    space = get_space(name)
    if not (callable(getattr(space, "supernet", None)) and callable(getattr(space, "derive", None))):
        able = [n for n in SPACES.names() if callable(getattr(SPACES.get(n)(), "supernet", None))]
        raise SpaceError(f"space {name!r} has no supernet, so it cannot be searched; search one of "
                         f"{', '.join(able)} (space=nb201), or sample and train its cells with study.sample and study.train")
    return space


def benchmark_of(name: str) -> "Benchmark | None":
    """The benchmark (ground truth and its facts) the space registered as `name` carries, or None."""
    return getattr(get_space(name), "benchmark", None)


def alpha_rows(space: str, alpha: Any, kind: str, n_rows: int, n_cols: int) -> list[list[float]]:
    """alpha[kind] as n_rows lists of n_cols finite floats; SpaceError naming what does not fit."""
    import math

    try:
        rows = [[float(v) for v in row] for row in alpha[kind]]
    except (KeyError, TypeError, ValueError):
        raise SpaceError(f"space {space!r} needs architecture weights {{{kind!r}: {n_rows} rows of {n_cols} numbers}}"
                         ) from None
    if len(rows) != n_rows or any(len(r) != n_cols for r in rows) or not all(math.isfinite(v) for r in rows for v in r):
        raise SpaceError(f"space {space!r}: alpha[{kind!r}] must be {n_rows} x {n_cols} finite numbers")
    return rows


def get_space(name: str) -> Space:
    """The space registered as `name`; SpaceError naming the choices otherwise."""
    return SPACES.get(name)()


def cell_id(canonical: str) -> str:
    """Stable short id derived from the canonical key."""
    return hashlib.sha1(canonical.encode()).hexdigest()[:10]


def too_many(space: str, n: int, n_max: int, include_degenerate: bool) -> SpaceError:
    """The error for a sample larger than the space's distinct (non-degenerate) cells."""
    kind = "cells" if include_degenerate else "non-degenerate cells"
    return SpaceError(f"n={n} is more than the {n_max} distinct {kind} of space {space!r}; use n<={n_max}")


C = TypeVar("C")


def draw_from_classes(space: str, classes: Sequence[C], n: int, seed: int, include_degenerate: bool) -> list[C]:
    """`n` of an enumerated space's class representatives: a seeded permutation cut at `n`.

    `classes` is the fixed-order list of the classes that may be sampled. Cutting one permutation makes
    a smaller sample with the same seed a prefix of a larger one, so a study can grow without retraining.
    """
    if n > len(classes):
        raise too_many(space, n, len(classes), include_degenerate)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(classes))[:n]
    return [classes[i] for i in order]


def draw_from_stream(stream: Iterator[Any], n: int, include_degenerate: bool) -> list[Any]:
    """The first `n` cells of `stream` with distinct canonical keys (degenerate ones skipped unless asked).

    For spaces too large to enumerate: the stream is a seeded generator of random cells, so a smaller
    sample is a prefix of a larger one. The caller bounds n by the number of classes of its space.
    """
    seen: set[str] = set()
    cells: list[Any] = []
    while len(cells) < n:
        cell = next(stream)
        key = cell.canonical()
        if key in seen or (cell.is_degenerate() and not include_degenerate):
            continue
        seen.add(key)
        cells.append(cell)
    return cells


def draw(space: str, n: int, seed: int, include_degenerate: bool = False) -> list[Cell]:
    """`n` distinct canonical cells of the space named `space` (see `Space.sample`)."""
    return get_space(space).sample(n, seed, include_degenerate)


def describe(space: Space, cell: Cell, shape: NetShape) -> dict[str, Any]:
    """The cells-file row of a cell: id, strings, benchmark keys, params/FLOPs of the supervised network."""
    params, flops = space.complexity(cell, shape)
    canonical = cell.canonical()
    return {"id": cell_id(canonical), "arch": cell.to_str(), "canonical": canonical, **cell.keys(),
            "params": params, "flops": flops}

