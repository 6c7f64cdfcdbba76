"""Datasets as uint8 tensors that live on the training device, and a registry to build them by name."""

from __future__ import annotations

from study.errors import UserError

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch


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


_DATASETS: dict[str, Callable[..., ImageData]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., ImageData]], Callable[..., ImageData]]:
    """Register a dataset builder under `name`."""

    def wrap(fn: Callable[..., ImageData]) -> Callable[..., ImageData]:
        _DATASETS[name] = fn
        return fn

    return wrap


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return sorted(_DATASETS)


def build_dataset(name: str, **options: Any) -> ImageData:
    """Build the dataset `name` with its options (from conf/dataset/<name>.yaml)."""
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}")
    return _DATASETS[name](**options)


@register_dataset("digits")
def digits(image_size: int = 16, test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes), upsampled once.

    The 17 grey levels (0..16) are scaled to 0..255. Upsampling to `image_size` is bilinear and happens
    once here, so training pays nothing for it (at the native 8x8 the last stage sees 2x2 maps).
    """
    from sklearn.datasets import load_digits

    if image_size < 8 or image_size % 4:
        raise DataError(f"digits: image_size must be a multiple of 4 and at least 8, got {image_size}")
    raw = load_digits()
    images = torch.from_numpy(raw.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    if image_size != 8:
        images = torch.nn.functional.interpolate(images, size=image_size, mode="bilinear", align_corners=False)
    x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    y = torch.from_numpy(raw.target.astype(np.int64))
    tr, te = stratified_split(raw.target, test_fraction, split_seed)
    tr_t, te_t = torch.from_numpy(tr), torch.from_numpy(te)
    mean, std = channel_stats(x[tr_t])
    return ImageData(
        name="digits", train_x=x[tr_t], train_y=y[tr_t], test_x=x[te_t], test_y=y[te_t],
        n_classes=10, mean=mean, std=std, fingerprint=fingerprint(x[tr_t], y[tr_t], x[te_t], y[te_t]),
        meta={"image_size": image_size, "test_fraction": test_fraction, "split_seed": split_seed},
    )


# The real image datasets register themselves on import; imported here so that every process that builds
# datasets by name (including spawned workers) sees them.
from study import cifar, imagefolder  # noqa: E402,F401
