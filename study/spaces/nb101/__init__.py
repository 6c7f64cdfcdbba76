"""The NAS-Bench-101 space (`nb101`): parse, sample, build and size its cells (see cell.py, network.py).

NetShape mapping: `width` is the stem's channels (the benchmark: 128), `cells_per_stage` the modules per
stack (the benchmark: 3). Importing this package does not import torch; `build` does.
"""

from study.spaces.nb101.space import NB101Cell, NB101Space, NB101_OPS, random_cells

__all__ = ["NB101_OPS", "NB101Cell", "NB101Space", "random_cells"]
