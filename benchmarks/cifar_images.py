"""CIFAR-10 training images from a JPEG folder (train/<class>/*.jpg), for the training-free benchmarks.

`python benchmarks/...` scripts of zero-cost scores read one fixed batch of real images: the folder
`tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp` makes, or any folder of that layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# The normalisation the NAS-Bench-201 and zero-cost reference code use for CIFAR-10 (pixel means / stds / 255).
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
SUFFIXES = (".jpg", ".jpeg", ".png")


def require_folder(root: Path) -> None:
    """Exit 2 with one line on stderr unless `root` holds train/<class>/ images."""
    if not (root / "train").is_dir():
        print(f"error: no CIFAR-10 image folder at {root} (train/<class>/*.jpg, test/<class>/*.jpg); "
              "pass --data-root DIR", file=sys.stderr)
        sys.exit(2)


def training_images(root: Path, n: int, seed: int):
    """n training images as uint8 (n, 3, H, W) and their labels, chosen by a permutation seeded with `seed`."""
    import torch
    from PIL import Image

    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((root / "train" / c).iterdir())
             if f.suffix.lower() in SUFFIXES]
    if len(files) < n:
        raise SystemExit(f"{root}/train/<class>/ holds {len(files)} images, fewer than --batch {n}")
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    x = torch.from_numpy(np.stack([np.asarray(Image.open(files[i][0]).convert("RGB")) for i in pick]))
    return x.permute(0, 3, 1, 2).contiguous(), torch.tensor([files[i][1] for i in pick])


def normalised(x):
    """uint8 images as floats normalised by CIFAR_MEAN and CIFAR_STD."""
    import torch

    mean, std = torch.tensor(CIFAR_MEAN)[:, None, None], torch.tensor(CIFAR_STD)[:, None, None]
    return (x.float() / 255 - mean) / std
