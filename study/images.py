"""Shared parts of the real image datasets (study/cifar.py, study/imagefolder.py): statistics, subsets.

`train_subset=k` / `test_subset=k` keep a fixed random k-image subset (seed 0, original order kept), for
studies small enough for a CPU; 0 keeps everything. Statistics not given in the config are computed over
the full training set before subsetting, so a subset study normalises like the full one.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from study.data import DataError, ImageData, fingerprint

log = logging.getLogger(__name__)

_SUBSET_SEED = 0


def stats_from_config(values: Sequence[float] | None, name: str) -> torch.Tensor | None:
    """Per-channel statistics given in 0..255 units (as the paper writes them) to [0, 1] units."""
    if values is None:
        return None
    if len(values) != 3 or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
        raise DataError(f"dataset.{name} must be three non-negative numbers in 0..255 units, got {values!r}")
    return torch.tensor([float(v) / 255.0 for v in values])


def channel_stats_chunked(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std in [0, 1] units without a float copy of the whole set."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    square = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].double() / 255.0
        total += part.sum(dim=(0, 2, 3))
        square += (part * part).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    var = (square - n * mean * mean) / max(n - 1, 1)
    return mean.float(), var.clamp_min(0).sqrt().float()


def check_subset(k: Any, name: str) -> None:
    """DataError unless k is a valid subset size; call it before decoding anything."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise DataError(f"dataset.{name} must be a non-negative integer (0 = all), got {k!r}")


def _subset(x: torch.Tensor, y: torch.Tensor, k: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of k images (seed 0, kept in the original order); k=0 keeps all."""
    check_subset(k, name)
    if k == 0 or k >= x.shape[0]:
        return x, y
    gen = torch.Generator().manual_seed(_SUBSET_SEED)
    idx = torch.randperm(x.shape[0], generator=gen)[:k].sort().values
    return x[idx], y[idx]


def finish(name: str, parts: dict[str, torch.Tensor], n_classes: int, mean: torch.Tensor | None,
            std: torch.Tensor | None, train_subset: int, test_subset: int, meta: dict[str, Any]) -> ImageData:
    """Subsets, statistics (computed over the full training set when not given) and the fingerprint."""
    if mean is None or std is None:
        computed = channel_stats_chunked(parts["train_x"])
        mean = computed[0] if mean is None else mean
        std = computed[1] if std is None else std
    train_x, train_y = _subset(parts["train_x"], parts["train_y"], train_subset, "train_subset")
    test_x, test_y = _subset(parts["test_x"], parts["test_y"], test_subset, "test_subset")
    return ImageData(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, n_classes=n_classes,
        mean=mean, std=std, fingerprint=fingerprint(train_x, train_y, test_x, test_y),
        meta={**meta, "train_subset": train_subset, "test_subset": test_subset},
    )


def preflight(dataset: str, options: dict[str, Any], n_classes: int) -> None:
    """Cheap checks before any training (no decoding, no download): data_root and layout, class count."""
    if dataset == "imagefolder":
        from study.imagefolder import check_root

        root, classes = check_root(options.get("data_root"))
        if len(classes) != n_classes:
            raise DataError(f"imagefolder: {root / 'train'} has {len(classes)} class folders but dataset.n_classes="
                            f"{n_classes}; set dataset.n_classes={len(classes)} (for study.sample too)")
    elif dataset == "cifar10" and not options.get("download", True):
        from study.cifar import CIFAR_DIR, _cifar_root, _has_cifar, _missing_cifar

        root = _cifar_root(options.get("data_root"), options.get("cache_dir"))
        if not _has_cifar(root / CIFAR_DIR):
            raise _missing_cifar(root, "dataset.download=false")
