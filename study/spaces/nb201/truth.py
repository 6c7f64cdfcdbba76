"""NAS-Bench-201's own accuracies of its cells: a fact of the space, read without torch or pandas.

`data/nb201-accuracy.csv.gz` (see data/NOTICE.md) holds, for each of the 15,625 cells, its benchmark
index and its 200-epoch test accuracy on CIFAR-10, CIFAR-100 and ImageNet16-120 (seed means, percent).
A search judges the cell it derives here the moment it derives it; `analysis.truth` reads the same file.
"""

from __future__ import annotations

import csv
import functools
import gzip
from pathlib import Path

TRUTH_FILE = Path(__file__).resolve().parent / "data" / "nb201-accuracy.csv.gz"
# Source column -> the name records and analyses use, as fractions like a study's accuracies.
COLUMNS = {"cifar10_test": "nb201-cifar10", "cifar100_test": "nb201-cifar100",
           "imagenet16_120_test": "nb201-imagenet16-120"}


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, float]]:
    with gzip.open(TRUTH_FILE, "rt", newline="") as f:
        return {row["arch"]: {"nb201_index": int(row["index"]),
                              **{name: float(row[col]) / 100.0 for col, name in COLUMNS.items()}}
                for row in csv.DictReader(f)}


def truth(arch: str) -> dict[str, float] | None:
    """The benchmark index and 200-epoch test accuracies (fractions) of the cell written `arch`, or None."""
    row = _table().get(arch)
    return None if row is None else dict(row)


def all_truths() -> dict[str, dict[str, float]]:
    """Every cell's index and accuracies, by arch string (a copy: callers may change it)."""
    return {arch: dict(row) for arch, row in _table().items()}
