"""The DARTS space (`darts`): parse, sample, build and size its genotypes (see cell.py, network.py).

NetShape mapping: `width` is DARTS' C, the channels of a node in the first stage (unnas' CIFAR-10
sample-based experiments: 16; the DARTS-V2 evaluation network: 36), `cells_per_stage` the normal cells
per stage (their 20 cells = 3 x 6 normal + 2 reduction: 6). Importing this package does not import torch.
"""

from study.spaces.darts.space import DARTS_OPS, DartsCell, DartsSpace, n_classes_of_space, random_cells

__all__ = ["DARTS_OPS", "DartsCell", "DartsSpace", "n_classes_of_space", "random_cells"]
