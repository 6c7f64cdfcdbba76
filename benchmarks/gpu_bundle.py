"""Everything `benchmarks/gpu_check.sh` needs on a GPU machine that has torch but no registry access.

    python benchmarks/gpu_bundle.py DIR [--train-per-class 1000 --test-per-class 200]

Writes DIR/site/ (the pure-Python packages the commands import beyond torch and numpy, copied from this
environment without byte code or compiled extensions) and DIR/data/cifar-10-batches-py/ (a class-balanced
CIFAR-10 subset in torchvision's pickle format, which `dataset=cifar10 data_root=DIR/data` reads without
torchvision or PIL), then DIR/MANIFEST.json. The images come from the CIFAR-10 JPEG archive
(../shared/data/cifar10-jpeg.tar.gz, or --archive), read straight from the tarball: the first k files of each class.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import pickle
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (the main one), or two levels up (a worktree under wt/)
ARCHIVES = [up / "shared" / "data" / "cifar10-jpeg.tar.gz" for up in (ROOT.parent, ROOT.parent.parent)]
# Hydra and its launcher plugin, their parsers and serialisers, and the reference network for throughput.py.
PACKAGES = ("hydra", "hydra_plugins", "omegaconf", "antlr4", "yaml", "packaging", "submitit", "cloudpickle",
            "xautodl", "typing_extensions")  # torch needs typing_extensions too; this recent copy serves both
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd")  # extensions fit one Python only


def package_paths(name: str) -> list[Path]:
    """The folders of an installed package (several for a namespace package such as hydra_plugins), or its file."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f"gpu_bundle: package {name} is not installed in {sys.prefix}; install the project first")
    if not spec.submodule_search_locations:
        return [Path(spec.origin)]  # a single-module distribution (typing_extensions.py)
    return [Path(p) for p in spec.submodule_search_locations]


def copy_packages(site: Path) -> None:
    """Copy every package of PACKAGES into `site`."""
    site.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        for path in package_paths(name):
            if path.is_file():
                shutil.copy2(path, site / path.name)
            else:
                shutil.copytree(path, site / name, ignore=SKIP, dirs_exist_ok=True)


def read_subset(archive: Path, per_class: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The first k images of each class of each split, decoded: {split: ((N, 3072) uint8, (N,) int)}."""
    from PIL import Image

    found: dict[str, dict[tuple[int, int], np.ndarray]] = {split: {} for split in per_class}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] not in per_class or parts[1] not in CLASSES:
                continue
            split, label, index = parts[0], CLASSES.index(parts[1]), int(Path(parts[2]).stem)
            if index >= per_class[split]:
                continue
            image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            found[split][(label, index)] = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).reshape(-1)
    out = {}
    for split, images in found.items():
        if len(images) != per_class[split] * len(CLASSES):
            raise SystemExit(f"gpu_bundle: {archive} holds {len(images)} usable {split} images, "
                             f"expected {per_class[split] * len(CLASSES)}")
        keys = sorted(images, key=lambda k: (k[1], k[0]))  # classes interleaved, as in the real batches
        out[split] = np.stack([images[k] for k in keys]), np.array([k[0] for k in keys])
    return out


class _Pixels:
    """Pickles as numpy.frombuffer(bytearray, "uint8"): a name every numpy has (numpy 2 pickles an ndarray by
    numpy._core, which older numpy cannot load; the GPU machine's numpy is not ours)."""

    def __init__(self, x: np.ndarray) -> None:
        self.raw = bytearray(np.ascontiguousarray(x, dtype=np.uint8).tobytes())

    def __reduce__(self):
        return np.frombuffer, (self.raw, "uint8")


def write_cifar(folder: Path, subset: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """torchvision's cifar-10-batches-py layout: five training batches, a test batch, batches.meta."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = subset["train"]
    for k, (xs, ys) in enumerate(zip(np.array_split(x, 5), np.array_split(y, 5)), start=1):
        batch = {"batch_label": f"training batch {k} of 5", "data": _Pixels(xs), "labels": ys.tolist(), "filenames": []}
        (folder / f"data_batch_{k}").write_bytes(pickle.dumps(batch, protocol=4))
    x, y = subset["test"]
    batch = {"batch_label": "testing batch 1 of 1", "data": _Pixels(x), "labels": y.tolist(), "filenames": []}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    meta = {"label_names": list(CLASSES), "num_cases_per_batch": len(subset["train"][0]) // 5, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))


def main() -> None:
    """Build the bundle."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--archive", type=Path, default=next((a for a in ARCHIVES if a.is_file()), ARCHIVES[0]))
    args = p.parse_args()
    if not args.archive.is_file():
        raise SystemExit(f"gpu_bundle: no CIFAR-10 archive at {args.archive}; pass --archive PATH (the CIFAR-10 "
                         "JPEG tarball), e.g. bash benchmarks/gpu_bundle.sh .gpu_bundle --archive PATH")
    shutil.rmtree(args.dir / "site", ignore_errors=True)
    copy_packages(args.dir / "site")
    subset = read_subset(args.archive, {"train": args.train_per_class, "test": args.test_per_class})
    write_cifar(args.dir / "data" / "cifar-10-batches-py", subset)
    size = sum(f.stat().st_size for f in args.dir.rglob("*") if f.is_file())
    manifest = {"packages": list(PACKAGES), "train_images": len(subset["train"][1]),
                "test_images": len(subset["test"][1]), "bytes": size, "python": sys.version.split()[0]}
    (args.dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    print(f"gpu bundle in {args.dir}: {len(PACKAGES)} packages, {manifest['train_images']} training and "
          f"{manifest['test_images']} test images, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
