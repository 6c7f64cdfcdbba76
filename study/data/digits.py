"""The handwritten digits shipped with the package (digits.npz): small enough to build in the preflight itself.

digits.npz holds scikit-learn's `load_digits()` arrays as uint8 (benchmarks/digits_npz.py wrote it; licence and
origin in digits.LICENSE), so neither scikit-learn nor what its import loads (joblib, pandas, scipy) is needed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from study.data.base import DataError, ImageData, channel_stats, fingerprint, register_dataset, stratified_split

FILE = Path(__file__).resolve().parent / "digits.npz"  # images (1797, 8, 8) uint8 0..16, targets (1797,) uint8


def load() -> tuple[np.ndarray, np.ndarray]:
    """The shipped images (N, 8, 8) with grey levels 0..16 and their classes (N,), as uint8 arrays."""
    with np.load(FILE) as data:
        return data["images"], data["targets"]


def check(options: dict[str, Any], n_classes: int) -> int:
    """Build the set (bundled, a fraction of a second) so a bad split is refused before any training."""
    try:
        with warnings.catch_warnings():  # a degenerate split warns from torch; the error below says it in one line
            warnings.simplefilter("ignore")
            data = digits(**options)
    except DataError:
        raise
    except (TypeError, ValueError) as e:
        raise DataError(f"dataset digits: {e}; check the dataset.* settings") from None
    if len(data.train_y) == 0 or len(data.test_y) == 0:
        raise DataError(f"dataset digits has {len(data.train_y)} training and {len(data.test_y)} test images "
                        "with these settings; check dataset.test_fraction")
    return len(data.train_y)


@register_dataset("digits", preflight=check)
def digits(image_size: int = 16, test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """The UCI handwritten digits as scikit-learn bundles them (1,797 8x8 images, 10 classes), upsampled once.

    The 17 grey levels (0..16) are scaled to 0..255. Upsampling to `image_size` is bilinear and happens
    once here, so training pays nothing for it (at the native 8x8 the last stage sees 2x2 maps).
    """
    if image_size < 8 or image_size % 4:
        raise DataError(f"digits: image_size must be a multiple of 4 and at least 8, got {image_size}")
    levels, targets = load()
    images = torch.from_numpy(levels.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    if image_size != 8:
        images = torch.nn.functional.interpolate(images, size=image_size, mode="bilinear", align_corners=False)
    x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    y = torch.from_numpy(targets.astype(np.int64))
    tr, te = stratified_split(targets, test_fraction, split_seed)
    tr_t, te_t = torch.from_numpy(tr), torch.from_numpy(te)
    mean, std = channel_stats(x[tr_t])
    return ImageData(
        name="digits", train_x=x[tr_t], train_y=y[tr_t], test_x=x[te_t], test_y=y[te_t],
        n_classes=10, mean=mean, std=std, fingerprint=fingerprint(x[tr_t], y[tr_t], x[te_t], y[te_t]),
        meta={"image_size": image_size, "test_fraction": test_fraction, "split_seed": split_seed},
    )
