"""ImageNet16-120, the data behind NAS-Bench-201's `nb201-imagenet16-120` truth column, from its published pickles.

`data_root` is the folder holding the downsampled-ImageNet files NAS-Bench-201 trains on (Chrabaszcz et al.
2017, 16 x 16 pixels): `train_data_batch_1` ... `train_data_batch_10` and `val_data`, Python pickles of
{"data": rows of 768 bytes (R, then G, then B planes), "labels": classes 1..1000}. The first `classes` (120)
classes are kept, as NAS-Bench-201 does (labels 1..120 become 0..119): about 151,700 training and 6,000 test
images, 116 MB as uint8, so the set is held in memory like CIFAR-10. The test set is the whole `val_data`
(NAS-Bench-201 splits it in two halves, x-valid and x-test, for its own reporting). The statistics and the
crop padding in conf/dataset/imagenet16.yaml are NAS-Bench-201's (xautodl's get_datasets).
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

TRAIN_FILES = [f"train_data_batch_{i}" for i in range(1, 11)]
TEST_FILES = ["val_data"]
SIDE = 16


def _root(data_root: Any) -> Path:
    if not data_root:
        raise DataError("dataset=imagenet16 needs data_root=PATH, the folder holding NAS-Bench-201's ImageNet16 "
                        "pickles (train_data_batch_1..10, val_data)")
    root = Path(str(data_root)).expanduser()
    missing = [f for f in TRAIN_FILES + TEST_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(f"imagenet16: {root} lacks {len(missing)} of the ImageNet16 pickles, e.g. {missing[0]}; "
                        "point data_root at the folder holding train_data_batch_1..10 and val_data")
    return root


def _check_classes(classes: Any) -> None:
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= 1000:
        raise DataError(f"imagenet16: dataset.classes must be an integer from 1 to 1000 (NAS-Bench-201: 120), "
                        f"got {classes!r}")


def read_split(root: Path, names: list[str], classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 16, 16) uint8 and labels (N,) 0..classes-1 of the files' first `classes` classes."""
    images, labels = [], []
    for name in names:  # one file at a time: the whole training set is 983 MB before filtering
        path = root / name
        entry = load_data_pickle(path, "imagenet16")  # refuses anything but arrays and containers: no code runs
        try:
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)
            target = np.asarray(entry["labels"], dtype=np.int64)
        except (KeyError, IndexError, ValueError, TypeError, OverflowError) as e:
            raise DataError(f"imagenet16: cannot read {path} ({type(e).__name__}: {e}); replace the file") from None
        if len(target) != len(data) or (len(target) and (target.min() < 1 or target.max() > 1000)):
            raise DataError(f"imagenet16: {path} holds {len(data)} images and {len(target)} labels (1..1000 "
                            "expected); replace the file")
        keep = target <= classes
        images.append(torch.from_numpy(data[keep].copy()))
        labels.append(torch.from_numpy(target[keep] - 1))
    return torch.cat(images), torch.cat(labels)


def check(options: dict[str, Any], n_classes: int) -> None:
    """The pickles are there (names only) and dataset.n_classes equals dataset.classes."""
    classes = options.get("classes", 120)
    _check_classes(classes)
    if options.get("image_size", SIDE) != SIDE:
        raise DataError(f"imagenet16: its images are {SIDE}x{SIDE}; leave dataset.image_size at {SIDE}")
    _root(options.get("data_root"))
    if classes != n_classes:
        raise DataError(f"imagenet16: dataset.classes={classes} but dataset.n_classes={n_classes}; set both alike "
                        "(for study.sample too)")


@register_dataset("imagenet16", preflight=check)
def imagenet16(data_root: Any = None, classes: int = 120, image_size: int = SIDE, mean: Sequence[float] | None = None,
               std: Sequence[float] | None = None, train_subset: int = 0, test_subset: int = 0) -> ImageData:
    """ImageNet16-120 (or another first-k-classes cut of ImageNet16), held as uint8 tensors."""
    _check_classes(classes)
    if image_size != SIDE:
        raise DataError(f"imagenet16: its images are {SIDE}x{SIDE}; leave dataset.image_size at {SIDE}")
    root = _root(data_root)
    train_x, train_y = read_split(root, TRAIN_FILES, classes)
    test_x, test_y = read_split(root, TEST_FILES, classes)
    if not len(train_y) or not len(test_y):
        raise DataError(f"imagenet16: no images of classes 1..{classes} in {root}; check the files")
    log.info("imagenet16: %d training and %d test images of %d classes", len(train_y), len(test_y), classes)
    parts = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
    return finish("imagenet16", parts, classes, stats_from_config(mean, "mean"), stats_from_config(std, "std"),
                  train_subset, test_subset, {"image_size": SIDE, "source": str(root), "classes": classes})
