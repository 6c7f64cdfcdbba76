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


JPEG_SIZES = [(48, 40), (40, 56), (64, 64), (37, 71), (90, 45)]  # (width, height): landscape, portrait, square, odd


def write_jpeg_tree(root: Path, classes: tuple[str, ...] = ("n01", "n02", "n03"), train: int = 6, test: int = 2,
                    test_split: str = "val", truncated: bool = True, seed: int = 0) -> dict[str, Path]:
    """Write train/<class>/*.JPEG and <test_split>/<class>/*.JPEG in the sizes of JPEG_SIZES (in turn), smooth
    colour fields with noise; with `truncated`, the second training image of the first class is cut to a third
    of its bytes. Returns {"truncated": its path} (when written)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: dict[str, Path] = {}
    k = 0
    for split, n in (("train", train), (test_split, test)):
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                w, h = JPEG_SIZES[k % len(JPEG_SIZES)]
                k += 1
                yy, xx = np.mgrid[0:h, 0:w]
                base = rng.integers(0, 256, 3)
                field = base + 60 * np.sin(xx[..., None] / rng.uniform(4, 12) + rng.uniform(0, 6, 3)) \
                    + 40 * np.cos(yy[..., None] / rng.uniform(4, 12))
                img = np.clip(field + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
                path = folder / f"{cls}_{i:04d}.JPEG"
                Image.fromarray(img).save(path, quality=90)
    if truncated:
        path = root / "train" / classes[0] / f"{classes[0]}_0001.JPEG"
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 3])
        out["truncated"] = path
    return out


def write_tiny_imagenet16(root: Path, per_file: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Write NAS-Bench-201's ImageNet16 pickles (train_data_batch_1..10, val_data: rows of 768 bytes, R, G, B
    planes; labels 1..1000), labels drawn from {1, 2, 119, 120, 121, 500}; returns what was written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    names = [(f"train_data_batch_{i}", "train") for i in range(1, 11)] + [("val_data", "test")]
    for name, split in names:
        images = rng.integers(0, 256, (per_file, 3, 16, 16), dtype=np.uint8)
        labels = [int(v) for v in rng.choice([1, 2, 119, 120, 121, 500], per_file)]
        with open(root / name, "wb") as f:
            pickle.dump({"data": images.reshape(per_file, 768), "labels": labels, "mean": np.zeros(768)}, f)
        written[f"{split}_x"].append(images)
        written[f"{split}_y"].append(np.array(labels))
    return {k: np.concatenate(v) for k, v in written.items()}
