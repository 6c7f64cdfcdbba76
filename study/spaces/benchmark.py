"""A space's benchmark: the ground truth of its cells and the facts around it, read without torch or pandas.

A space with a benchmark sets `benchmark` to one of these (NAS-Bench-201: study/spaces/nb201/truth.py); the
analyses, the search's progress lines and its report ask the space for it and never name a benchmark
themselves. Adding a benchmark to a space is its table under the space's data/ and one `Benchmark` value.
"""

from __future__ import annotations

import csv
import functools
import gzip
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Published:
    """A search result from the literature: which search, and the main column's accuracy (percent) of its cell."""

    search: str
    accuracy: float
    sd: float | None = None


@dataclass(frozen=True, eq=False)  # one value per space, hashed by identity (it holds dicts)
class Benchmark:
    """The table of every cell's accuracies (percent, keyed by the space's cell string) and what it means."""

    name: str  # what a report calls it, e.g. "NAS-Bench-201 (NATS-Bench tss, 200 epochs, seed mean)"
    file: Path  # a gzipped CSV with columns `arch`, `index` and those of `columns`
    columns: dict[str, str]  # column in the file -> the name records and analyses use (`nb201-cifar10`)
    labels: dict[str, str]  # the name an analysis uses -> how a sentence says it (`CIFAR-10`)
    main: str  # the column a search is judged by first, and a report leads with
    index: str = "index"  # the file's own cell number, kept in records as `<space>_index`
    index_name: str = "benchmark_index"
    published: tuple[Published, ...] = ()  # searches from the literature, in the setting below
    published_setting: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # anything else a report may say (`what_ranks`)

    def truth(self, arch: str) -> dict[str, float] | None:
        """The benchmark index and accuracies (fractions, like a study's) of the cell written `arch`, or None."""
        row = _table(self.file, tuple(self.columns.items()), self.index, self.index_name).get(arch)
        return None if row is None else dict(row)

    def all_truths(self) -> dict[str, dict[str, float]]:
        """Every cell's index and accuracies, by arch string (a copy: callers may change it)."""
        return {arch: dict(row) for arch, row in
                _table(self.file, tuple(self.columns.items()), self.index, self.index_name).items()}

    def label(self, column: str) -> str:
        """How a sentence names `column` (`CIFAR-10`), or the column itself."""
        return self.labels.get(column, column)


@functools.lru_cache(maxsize=4)
def _table(path: Path, columns: tuple[tuple[str, str], ...], index: str,
           index_name: str) -> dict[str, dict[str, float]]:
    with gzip.open(path, "rt", newline="") as f:
        return {row["arch"]: {index_name: int(row[index]), **{name: float(row[col]) / 100.0 for col, name in columns}}
                for row in csv.DictReader(f)}
