"""CIFAR-10 from torchvision's files: `data_root=PATH` for an existing copy, else torchvision's downloader.

`data_root` is torchvision's root (the folder holding `cifar-10-batches-py/`) or that folder itself. With
no `data_root`, torchvision downloads into `<cache_dir>/cifar10` (study.train sets cache_dir to
`<study_dir>/cache`). When neither works, one error line names both options.

torchvision verifies the md5 sum of every file and refuses a copy that differs (re-pickled, truncated,
or the tiny copies the tests build). Such a copy is still read, by our own reader of the same pickle
format (tests check that it equals torchvision's reader), with a warning naming the folder, so results
from it are never silently taken for the official release. That reader resolves arrays and containers only
(study/data/pickles.py): an unchecked file cannot run code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from study.data.base import DataError, ImageData, finish, register_dataset, stats_from_config
from study.data.pickles import load_data_pickle

log = logging.getLogger(__name__)

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]


def _cifar_root(data_root: str | None, cache_dir: str | None) -> Path:
    """torchvision's `root` (the folder that holds cifar-10-batches-py/)."""
    if data_root:
        root = Path(data_root).expanduser()
        return root.parent if root.name == CIFAR_DIR else root
    if cache_dir:
        return Path(cache_dir) / "cifar10"
    raise DataError("dataset=cifar10 needs data_root=PATH (a folder holding cifar-10-batches-py/) "
                    "or a cache_dir to download into")


def _has_cifar(folder: Path) -> bool:
    return all((folder / f).is_file() for f in CIFAR_TRAIN + CIFAR_TEST + ["batches.meta"])


def _missing_cifar(root: Path, why: str) -> DataError:
    return DataError(
        f"cifar10: no CIFAR-10 copy in {root / CIFAR_DIR} and {why}; set data_root=PATH to a folder holding "
        "cifar-10-batches-py/ (torchvision's python format), or allow torchvision's download "
        "(dataset.download=true, network access)"
    )


def read_cifar_batches(folder: Path, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10 python pickle batches as images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    images, labels = [], []
    for name in names:
        path = folder / name
        entry = load_data_pickle(path, "cifar10")  # refuses anything but arrays and containers: no code runs
        try:
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            target = np.asarray(entry["labels"], dtype=np.int64)
        except (KeyError, IndexError, ValueError, TypeError, OverflowError) as e:
            raise DataError(f"cifar10: cannot read {path} ({type(e).__name__}: {e}); "
                            "replace it with torchvision's cifar-10-batches-py files") from None
        if len(target) != len(data):
            raise DataError(f"cifar10: {path} holds {len(data)} images but {len(target)} labels; replace the file")
        images.append(torch.from_numpy(data))
        labels.append(torch.from_numpy(target))
    return torch.cat(images), torch.cat(labels)


def _read_cifar(root: Path) -> dict[str, torch.Tensor]:
    """torchvision's reader on a verified copy; our reader (same format) with a warning otherwise."""
    try:
        from torchvision.datasets import CIFAR10
    except ImportError:  # torch without torchvision (a bare GPU image): the same format, read by our reader
        log.warning("cifar10: torchvision is not installed; reading %s without checking its md5 sums", root / CIFAR_DIR)
    else:
        try:
            parts = {}
            for split, train in (("train", True), ("test", False)):
                ds = CIFAR10(str(root), train=train, download=False)  # checks every file's md5 sum
                parts[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
                parts[f"{split}_y"] = torch.tensor(ds.targets, dtype=torch.int64)
            return parts
        except RuntimeError:
            log.warning("cifar10: the files in %s differ from the official release (md5 sums); reading them anyway",
                        root / CIFAR_DIR)
    folder = root / CIFAR_DIR
    train_x, train_y = read_cifar_batches(folder, CIFAR_TRAIN)
    test_x, test_y = read_cifar_batches(folder, CIFAR_TEST)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def _download_cifar(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    log.info("cifar10: downloading with torchvision into %s", root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as e:  # no network, read-only folder, corrupt archive
        raise _missing_cifar(root, f"the download failed ({type(e).__name__}: {e})") from None


def check(options: dict[str, Any], n_classes: int) -> int | None:
    """Without the download allowed, a copy must be in place (checked by file names, nothing read); returns
    the number of training images."""
    if not options.get("download", True):
        root = _cifar_root(options.get("data_root"), options.get("cache_dir"))
        if not _has_cifar(root / CIFAR_DIR):
            raise _missing_cifar(root, "dataset.download=false")
    subset = options.get("train_subset", 0)
    return min(subset, 50_000) if isinstance(subset, int) and subset > 0 else 50_000


@register_dataset("cifar10", preflight=check)
def cifar10(data_root: str | None = None, download: bool = True, cache_dir: str | None = None, image_size: int = 32,
            mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
            train_subset: int = 0, test_subset: int = 0) -> ImageData:
    """CIFAR-10 through torchvision (50,000 train / 10,000 test 32x32 colour images, 10 classes).

    `image_size` below 32 downsamples every image once (bilinear, antialiased), for CPU budgets that
    rank cells better per CPU-second at 16 pixels (benchmarks/ladder.py, docs/ladder.md).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 32:
        raise DataError(f"cifar10: image_size must be an integer from 8 to 32 (got {image_size!r}); "
                        "32 is the data's own size, smaller ones downsample")
    root = _cifar_root(data_root, cache_dir)
    if not _has_cifar(root / CIFAR_DIR):
        if not download:
            raise _missing_cifar(root, "dataset.download=false")
        _download_cifar(root)
    parts = _read_cifar(root)
    if parts["train_y"].min() < 0 or max(parts["train_y"].max(), parts["test_y"].max()) >= 10:
        raise DataError(f"cifar10: labels outside 0..9 in {root / CIFAR_DIR}; replace the files")
    if image_size != 32:
        parts = {k: _downsample(v, image_size) if k.endswith("_x") else v for k, v in parts.items()}
    mean_t, std_t = stats_from_config(mean, "mean"), stats_from_config(std, "std")
    return finish("cifar10", parts, 10, mean_t, std_t, train_subset, test_subset,
                  {"image_size": image_size, "source": str(root / CIFAR_DIR)})


def _downsample(x: torch.Tensor, size: int, chunk: int = 10_000) -> torch.Tensor:
    """uint8 images (N, C, 32, 32) resized to size x size, bilinear with antialiasing, in chunks."""
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, x.shape[0], chunk):
        part = torch.nn.functional.interpolate(x[start:start + chunk].float(), size=(size, size), mode="bilinear",
                                               antialias=True, align_corners=False)  # (B, C, size, size)
        out[start:start + chunk] = part.round().clamp_(0, 255).to(torch.uint8)
    return out
