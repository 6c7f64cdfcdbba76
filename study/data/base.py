"""Datasets as uint8 tensors that live on the training device, and a registry to build and check them by name.

Datasets too large for memory stream instead (study/data/stream.py, registered with `streams=True`); both kinds
hand the trainer its batches through one interface, `batches()` (study/data/batches.py).

A dataset is one file in study/data/ that registers a builder with `@register_dataset(name, preflight=...)`.
The preflight is what the train command runs before accepting a command: cheap checks (no decoding, no
download) that a setting is usable, so a mistake is one line at the command line, not one per worker. It
returns the number of training images when that is cheap to know (None otherwise), so that a batch larger
than the data is refused too.

Shared parts of the real image datasets live here too: statistics given in the config, fixed subsets.
`train_subset=k` / `test_subset=k` keep a fixed random k-image subset (seed 0, original order kept), for
studies small enough for a CPU; 0 keeps everything. Statistics not given in the config are computed over
the full training set before subsetting, so a subset study normalises like the full one.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from study.errors import UserError
from study.registry import Registry
from study.data.batches import InMemoryBatches

if TYPE_CHECKING:
    from study.data.batches import BatchSource

log = logging.getLogger(__name__)


class DataError(UserError):
    """A dataset that cannot be built as configured (missing path, wrong layout, ...)."""


@dataclass
class ImageData:
    """A labelled image dataset held as uint8 tensors, split into train and test.

    Images are (N, C, H, W) uint8, labels (N,) int64. `mean` and `std` are per-channel statistics in
    [0, 1] units used for normalisation.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    mean: torch.Tensor
    std: torch.Tensor
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    # Facts objectives read (the streaming dataset, study/data/stream.py, sets them otherwise): images arrive
    # whole and small, so objectives crop them on the device; no PCA lighting; colorization normalises the
    # lightness with its own CIFAR constants.
    streams: ClassVar[bool] = False
    lighting: ClassVar[float] = 0.0
    lightness: ClassVar[tuple[float, float] | None] = None

    @property
    def device(self) -> torch.device:
        """Where the tensors live (and batches are made)."""
        return self.train_x.device

    def batches(self, views: Any = None, seed: int = 0) -> "BatchSource":
        """The trainer's batch source: the tensors indexed on the device (views and seed do not apply)."""
        return InMemoryBatches(self)

    @property
    def channels(self) -> int:
        """Number of colour channels (1 grayscale, 3 RGB)."""
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        """Side length of the (square) images."""
        return self.train_x.shape[-1]

    def to(self, device: torch.device | str) -> "ImageData":
        """A copy with every tensor on `device` (done once per worker, never per batch)."""
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y", "mean", "std")}
        return ImageData(self.name, n_classes=self.n_classes, fingerprint=self.fingerprint, meta=self.meta, **moved)


def fingerprint(*arrays: torch.Tensor) -> str:
    """Content hash of tensors, recorded with every run so results from different data never mix."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(tuple(a.shape)).encode())
        # The tensor's own bytes, read in place (no copy for a contiguous CPU tensor, e.g. a memory-mapped
        # cache): the same bytes `.numpy().tobytes()` gave, so fingerprints stored in records stay valid.
        flat = a.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        for start in range(0, flat.size, _HASH_CHUNK):
            h.update(flat[start:start + _HASH_CHUNK])
    return h.hexdigest()[:16]


_HASH_CHUNK = 1 << 26  # bytes per hashlib update: bounds any temporary the buffer protocol might make


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded permutation, the first share goes to test."""
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def channel_stats(x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std in [0, 1] units."""
    x = x_uint8.float() / 255.0
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


Preflight = Callable[[dict[str, Any], int], "int | None"]  # (options, n_classes) -> training images or None; DataError


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its builder, the cheap check run before any training, and whether it streams
    (decoded by loader workers batch by batch, never held in memory; study/data/stream.py)."""

    name: str
    build: Callable[..., Any]
    preflight: Preflight | None = None
    streams: bool = False


DATASETS: Registry[Dataset] = Registry("dataset", DataError)


def register_dataset(name: str, preflight: Preflight | None = None,
                     streams: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a dataset builder under `name`, with `preflight(options, n_classes)` for the train command."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        DATASETS.register(name)(Dataset(name, fn, preflight, streams))
        return fn

    return wrap


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return DATASETS.names()


def build_dataset(name: str, **options: Any) -> Any:
    """Build the dataset `name` with its options (from conf/dataset/<name>.yaml): an `ImageData`, or a
    `StreamData` for a dataset that streams."""
    return DATASETS.get(name).build(**options)


def preflight(name: str, options: dict[str, Any], n_classes: int) -> int | None:
    """Refuse unknown options and run the dataset's own cheap checks, before any training; returns the number
    of training images when the dataset knows it cheaply."""
    entry = DATASETS.get(name)
    try:
        inspect.signature(entry.build).bind(**options)
    except TypeError as e:
        raise DataError(f"dataset {name}: {e}; check the dataset.* settings (conf/dataset/{name}.yaml)") from None
    return entry.preflight(options, n_classes) if entry.preflight is not None else None


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
