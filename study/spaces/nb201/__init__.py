"""NAS-Bench-201 (Dong & Yang, ICLR 2020): cells in cell.py, the network in network.py (torch, lazy)."""

from study.spaces.nb201.cell import NB201_OPS, NB201Cell, nb201_cells, nb201_classes
from study.spaces.nb201.space import NB201Space, complexity

__all__ = ["NB201_OPS", "NB201Cell", "NB201Space", "complexity", "nb201_cells", "nb201_classes"]
