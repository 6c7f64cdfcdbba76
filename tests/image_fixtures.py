"""Tiny image datasets on disk in the real formats: torchvision's CIFAR-10 pickles, an image folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR_TRAIN_PER_BATCH = 8  # 5 batches -> 40 training images
CIFAR_TEST = 12


def write_tiny_cifar(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write cifar-10-batches-py/ as torchvision expects it (Python pickles, rows of 3072 bytes, R then G then B
    planes); returns the arrays written (train/test images (N, 3, 32, 32) uint8 and labels)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    batches = [(f"data_batch_{i}", "train", CIFAR_TRAIN_PER_BATCH) for i in range(1, 6)]
    for name, split, n in batches + [("test_batch", "test", CIFAR_TEST)]:
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        entry = {"batch_label": name, "labels": labels, "data": images.reshape(n, 3072),
                 "filenames": [f"img_{k}.png" for k in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
        written[f"{split}_x"].append(images)
        written[f"{split}_y"].append(np.array(labels, dtype=np.int64))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_cases_per_batch": CIFAR_TRAIN_PER_BATCH}, f)
    return {k: np.concatenate(v) for k, v in written.items()}


def write_tiny_folder(root: Path, per_class: dict[str, int] | None = None, size: int = 32,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Write train/<class>/*.png and test/<class>/*.png (lossless, so decoding is exact); returns
    {"<split>/<class>/<file>": image (size, size, 3) uint8}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    per_class = per_class or {"train": 12, "test": 4}
    images = {}
    for split, n in per_class.items():
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for k in range(n):
                # Smooth colour gradients plus noise: realistic enough for Lab binning, random enough to differ.
                base = rng.integers(0, 256, 3)
                ramp = np.linspace(0, 80, size)[None, :, None] * rng.choice([-1, 1], 3)
                noise = rng.normal(0, 20, (size, size, 3))
                img = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{k:03d}.png")
                images[f"{split}/{cls}/{k:03d}.png"] = img
    return images
