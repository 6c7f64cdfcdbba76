"""The NAS-Bench-201 space: parse, sample (a seeded permutation of its 4,930 classes), size and build; for
searches, the supernet, the cell an alpha derives, and the benchmark's own accuracies of a cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from study.spaces.base import SPACES, NetShape, SpaceError, alpha_rows, draw_from_classes
from study.spaces.nb201.cell import NB201_OPS, NB201Cell, nb201_classes
from study.spaces.nb201.truth import NB201

if TYPE_CHECKING:
    from torch import nn


@SPACES.register("nb201")
class NB201Space:
    """NAS-Bench-201's cells on its residual skeleton (stem, 3 stages of N cells, 2 reductions)."""

    name = "nb201"
    benchmark = NB201  # the truth of every cell, and the searches published on them

    def parse(self, arch: str) -> NB201Cell:
        """The cell written in the official string form."""
        return NB201Cell.from_str(arch)

    def classes(self, include_degenerate: bool = False) -> list[NB201Cell]:
        """Representatives of the classes that may be sampled, in canonical-key order."""
        return [c for c in nb201_classes().values() if include_degenerate or not c.is_degenerate()]

    def sample(self, n: int, seed: int, include_degenerate: bool = False) -> list[NB201Cell]:
        """`n` distinct classes' representatives: a seeded permutation of all classes, cut at `n`."""
        return draw_from_classes(self.name, self.classes(include_degenerate), n, seed, include_degenerate)

    def build(self, cell: NB201Cell, shape: NetShape, plain: bool = False) -> "nn.Module":
        """The trunk (stem, cells, reductions, last BN-ReLU) with `c_out` = 4 x width; `plain`: per-edge cells."""
        from study.spaces.nb201.network import Trunk

        shape.check_variants(self.name)
        return Trunk(self._own(cell), shape.c_in, shape.width, shape.cells_per_stage, fused=not plain)

    def complexity(self, cell: NB201Cell, shape: NetShape) -> tuple[int, int]:
        """Closed-form params and multiply-accumulates of trunk + pooled linear head."""
        shape.check_variants(self.name)
        return complexity(self._own(cell), shape)

    def supernet(self, shape: NetShape) -> "nn.Module":
        """The skeleton at `shape` with every edge mixing all 5 ops; one (6, 5) alpha, `alphas["cell"]`."""
        from study.spaces.nb201.supernet import Supernet

        shape.check_variants(self.name)
        return Supernet(shape.c_in, shape.width, shape.cells_per_stage)

    def derive(self, alpha: Mapping[str, Any]) -> NB201Cell:
        """The cell of an alpha: on each edge the op of largest weight, `none` included (xautodl's rule)."""
        rows = alpha_rows(self.name, alpha, "cell", len(NB201Cell.EDGES), len(NB201_OPS))
        return NB201Cell(tuple(NB201_OPS[max(range(len(row)), key=row.__getitem__)] for row in rows))

    def truth(self, cell: NB201Cell) -> dict[str, float] | None:
        """The benchmark index and 200-epoch test accuracies (fractions) of this very cell."""
        return self.benchmark.truth(self._own(cell).to_str())

    @staticmethod
    def _own(cell: object) -> NB201Cell:
        if not isinstance(cell, NB201Cell):
            raise SpaceError(f"space nb201 got a {type(cell).__name__}, not an NB201Cell")
        return cell


def complexity(cell: NB201Cell, shape: NetShape) -> tuple[int, int]:
    """Parameters and multiply-accumulates per image of `network.classifier(...)`, computed without torch.

    Sampling describes hundreds of cells; this closed form is what building and running each network
    would measure (tests check it against `count_params` and `count_flops`).
    """
    conv = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
    kernels = [conv[op] for op in cell.edges if op in conv]
    c_in, n_classes, cells_per_stage = shape.c_in, shape.n_classes, shape.cells_per_stage
    size, c = shape.image_size, shape.width
    params = 9 * c_in * c + 2 * c  # stem conv + BN
    flops = size * size * c * 9 * c_in
    for stage in range(3):
        if stage > 0:  # residual reduction c -> 2c, stride 2
            c_out, size = 2 * c, (size + 1) // 2
            params += 9 * c * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c * c_out
            flops += size * size * (9 * c * c_out + 9 * c_out * c_out + c * c_out)
            c = c_out
        per_cell = sum(k * k * c * c for k in kernels)
        params += cells_per_stage * (per_cell + 2 * c * len(kernels))
        flops += cells_per_stage * size * size * per_cell
    params += 2 * c + c * n_classes + n_classes  # last BN + linear
    flops += c * n_classes
    return params, flops
