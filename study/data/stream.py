"""Image folders too large for memory (ImageNet-1K as the paper trains on it): listed once, decoded batch by batch.

Layout: `<data_root>/train/<class>/*` and `<data_root>/<test_split>/<class>/*` (ImageNet: `val/`, sorted into
class folders as the usual preparation scripts leave it), the same class folders in both; classes are the
sorted folder names (labels 0..K-1). Images may sit in nested folders below a class folder; hidden files and
files without an image extension are ignored. Nothing is decoded here: the listing (relative paths as one
numpy byte array, labels as int32, a few dozen bytes per image) is all a process holds, and loader worker
processes decode and cut each batch (study/data/loader.py). Memory does not grow with the images' size.

What is checked where:
- before any run (`check`, the train command's preflight; directory names only): the folder and both split
  folders exist, the test split is sorted into class folders, it names the same classes as train/, and
  their count equals `dataset.n_classes`;
- when the dataset is built (`stream_dataset`; one directory listing per class, no image opened): every
  training class holds images, and the test split holds some;
- while training (the loader): an image that cannot be decoded (truncated, not an image) is skipped, counted
  and logged, and the next image of the listing takes its place in the batch; more than `max_unreadable`
  distinct such files stop the run with a DataError naming one of them.

The fingerprint hashes the classes and every relative path (not sizes or mtimes: a stat of 1.3 million
files on a network file system takes minutes); records carry it like the in-memory datasets' content hash.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np
import torch

from study.data.base import DataError, check_subset, register_dataset, stats_from_config
from study.data.decoders import check_decoder
from study.data.listing import IMAGE_EXTENSIONS, image_files, is_image
from study.data.loader import StreamBatches

if TYPE_CHECKING:
    from study.data.batches import BatchSource

log = logging.getLogger(__name__)

# ImageNet's channel statistics in 0..255 units (RGB), the values torchvision and pycls use.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Listing:
    """The images of one split: paths relative to the split folder (bytes, UTF-8) and labels."""

    files: np.ndarray  # (N,) numpy bytes ('S'): one array, so forked workers share it page for page
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, k: int) -> "Listing":
        """A fixed random k-image subset (seed 0, original order kept); k=0 keeps all."""
        if k == 0 or k >= len(self):
            return self
        keep = np.sort(np.random.default_rng(0).permutation(len(self))[:k])
        return Listing(self.files[keep], self.labels[keep])


@dataclass
class StreamData:
    """A labelled image folder read batch by batch: its listings, statistics and the loader's settings.

    `image_size` is the side objectives crop to (224: RandomResizedCrop in training, centre crop in testing),
    `resize` the shorter side before a centre crop (256) and jigsaw's crop; `lighting` the std of AlexNet's
    PCA lighting noise added on the device in training (0.1); `mean`/`std` per channel in [0, 1] units.
    """

    name: str
    root: Path
    test_split: str
    classes: list[str]
    train: Listing
    test: Listing
    mean: torch.Tensor
    std: torch.Tensor
    image_size: int = 224
    resize: int = 256
    lighting: float = 0.1
    loader_workers: int = 1
    max_unreadable: int = 1000
    decoder: str = "pil"  # study/data/decoders.py: pil, or torchcodec (faster, opt-in)
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    streams: ClassVar[bool] = True
    channels: ClassVar[int] = 3  # every image is converted to RGB

    @property
    def n_classes(self) -> int:
        """Number of classes (class folders of train/)."""
        return len(self.classes)

    @property
    def lightness(self) -> tuple[float, float]:
        """Colorization's lightness normalisation: the mean of the channel means and stds (unnas)."""
        return float(self.mean.mean()), float(self.std.mean())

    def to(self, device: torch.device | str) -> "StreamData":
        """The same dataset with batches delivered to `device` (nothing is copied: there is nothing held)."""
        device = torch.device(device)
        return replace(self, mean=self.mean.to(device), std=self.std.to(device), device=device)

    def batches(self, views: Any, seed: int = 0) -> "BatchSource":
        """The trainer's batch source: loader workers cut each image with `views` (train, test); orders from `seed`."""

        return StreamBatches(self, views, seed)


def _split_dirs(folder: Path) -> tuple[list[str], list[str]]:
    """Class folder names and image files directly in `folder` (names only: no stat)."""
    dirs, images = [], []
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            dirs.append(entry.name)
        elif is_image(entry.name):
            images.append(entry.name)
    return sorted(dirs), images


def layout(name: str, test_split: str) -> str:
    """What the folder must look like, for error messages."""
    return f"dataset={name} needs data_root=PATH, a folder with train/<class>/* and {test_split}/<class>/* images"


def check_root(name: str, data_root: Any, test_split: str) -> tuple[Path, list[str]]:
    """The folder and its classes; DataError naming the fix when the layout is wrong (directory names only)."""
    if not data_root:
        raise DataError(layout(name, test_split))
    root = Path(str(data_root)).expanduser()
    if not root.is_dir():
        raise DataError(f"{name}: data_root {str(root)!r} is not a folder; {layout(name, test_split)}")
    for split in ("train", test_split):
        if not (root / split).is_dir():
            raise DataError(f"{name}: {root} has no {split}/ folder; expected train/<class>/* and "
                            f"{test_split}/<class>/*"
                            + (" (dataset.test_split names the test folder)" if split == test_split else ""))
    classes, loose = _split_dirs(root / "train")
    if loose or not classes:
        raise DataError(f"{name}: {root / 'train'} holds {len(loose)} images directly and {len(classes)} class "
                        "folders; put each class's images in train/<class>/")
    test_classes, loose = _split_dirs(root / test_split)
    if loose:
        raise DataError(f"{name}: {root / test_split} holds {len(loose)} images directly (e.g. {sorted(loose)[0]}), "
                        f"not in class folders; sort them into {test_split}/<class>/ (for ImageNet's val/, the "
                        "labels of the devkit do it, e.g. with the widely used valprep.sh)")
    if test_classes != classes:
        extra, missing = sorted(set(test_classes) - set(classes)), sorted(set(classes) - set(test_classes))
        parts = ([f"{len(extra)} class folders train/ lacks (e.g. {extra[0]})"] if extra else []) + (
            [f"lacks {len(missing)} of train/'s (e.g. {missing[0]})"] if missing else [])
        what = " and ".join(parts)
        raise DataError(f"{name}: {root / test_split} has other classes than train/: {what}; both splits need the same "
                        "class folders")
    return root, classes


def scan(name: str, folder: Path, classes: list[str], every_class: bool) -> Listing:
    """Every image of one split with its label; DataError for an empty class (if `every_class`) or split."""
    files: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for label, cls in enumerate(classes):
        found = [f"{cls}/{rel}" for rel, _ in image_files(folder / cls, name)]
        if every_class and not found:
            raise DataError(f"{name}: {folder / cls} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                            "every class needs training images")
        # One class's names as Python strings at a time: ImageNet's 1.3 million would take ~100 MB as such.
        files.append(np.array([f.encode() for f in found], dtype=bytes))
        labels.append(np.full(len(found), label, dtype=np.int32))
    if not sum(len(f) for f in files):
        raise DataError(f"{name}: {folder} holds no images in its class folders")
    return Listing(np.concatenate(files), np.concatenate(labels))


def listing_fingerprint(classes: list[str], train: Listing, test: Listing) -> str:
    """Hash of the classes and every relative path of both splits."""
    h = hashlib.sha1("\n".join(classes).encode())
    for part in (train, test):
        h.update(b"\0".join(part.files.tolist()))
        h.update(part.labels.tobytes())
    return h.hexdigest()[:16]


def check_options(name: str, image_size: Any, resize: Any, lighting: Any, loader_workers: Any,
                  max_unreadable: Any, decoder: Any = "pil") -> None:
    """DataError for a setting out of range, or a decoder this machine lacks (before anything is listed)."""
    check_decoder(decoder)
    limits = (("image_size", image_size, 8), ("resize", resize, 8), ("max_unreadable", max_unreadable, 0))
    for key, value, low in limits:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"{name}: dataset.{key} must be an integer of at least {low}, got {value!r}")
    if resize < image_size:
        raise DataError(f"{name}: dataset.resize ({resize}) must be at least dataset.image_size ({image_size}): "
                        "test images are resized to it, then centre-cropped to image_size")
    if isinstance(lighting, bool) or not isinstance(lighting, (int, float)) or not 0 <= lighting < 10:
        raise DataError(f"{name}: dataset.lighting must be a number in [0, 10), the PCA lighting noise's std "
                        f"(0.1 in the paper; 0 turns it off), got {lighting!r}")
    if loader_workers != "auto" and (isinstance(loader_workers, bool) or not isinstance(loader_workers, int)
                                     or loader_workers < 0):
        raise DataError(f"{name}: dataset.loader_workers must be auto or an integer of at least 0 (0 decodes in the "
                        f"training process), got {loader_workers!r}")


def auto_loader_workers() -> int:
    """`loader_workers=auto` outside the train command (which divides the cores among trainings): cores - 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def stream_dataset(name: str, data_root: Any = None, test_split: str = "val", image_size: int = 224,
                   resize: int = 256, mean: Sequence[float] | None = IMAGENET_MEAN,
                   std: Sequence[float] | None = IMAGENET_STD, lighting: float = 0.1, loader_workers: Any = "auto",
                   max_unreadable: int = 1000, decoder: str = "pil", train_subset: int = 0,
                   test_subset: int = 0) -> StreamData:
    """List a train/<class>/*, <test_split>/<class>/* folder (see the module doc); nothing is decoded."""
    check_options(name, image_size, resize, lighting, loader_workers, max_unreadable, decoder)
    check_subset(train_subset, "train_subset")
    check_subset(test_subset, "test_subset")
    mean_t, std_t = stats_from_config(mean, "mean"), stats_from_config(std, "std")
    if mean_t is None or std_t is None:
        raise DataError(f"{name}: dataset.mean and dataset.std must be given (three values in 0..255 units): a "
                        "streaming dataset is never read whole to compute them; ImageNet's are the default")
    root, classes = check_root(name, data_root, test_split)
    train = scan(name, root / "train", classes, every_class=True)
    test = scan(name, root / test_split, classes, every_class=False)
    log.info("%s: %d training and %d test images in %d classes under %s", name, len(train), len(test),
             len(classes), root)
    full = listing_fingerprint(classes, train, test)
    train, test = train.subset(train_subset), test.subset(test_subset)
    fp = full if not (train_subset or test_subset) else listing_fingerprint(classes, train, test)
    return StreamData(
        name=name, root=root, test_split=test_split, classes=classes, train=train, test=test, mean=mean_t, std=std_t,
        image_size=image_size, resize=resize, lighting=float(lighting),
        loader_workers=auto_loader_workers() if loader_workers == "auto" else loader_workers,
        max_unreadable=max_unreadable, decoder=decoder, fingerprint=fp,
        meta={"image_size": image_size, "resize": resize, "source": str(root), "test_split": test_split,
              "train_subset": train_subset, "test_subset": test_subset, "listing": full},
    )


def stand_in(name: str, options: dict[str, Any], image_size: int, n_classes: int) -> StreamData:
    """A dataset of the configured shape with no images (reads no folder), for checking an objective's options."""
    empty = Listing(np.array([], dtype=bytes), np.array([], dtype=np.int32))
    return StreamData(name, Path("."), str(options.get("test_split", "val")), [str(k) for k in range(n_classes)],
                      empty, empty, torch.full((3,), 0.5), torch.full((3,), 0.25), image_size=image_size,
                      resize=int(options.get("resize", 256)), lighting=float(options.get("lighting", 0.1)))


def check(name: str, options: dict[str, Any], n_classes: int) -> None:
    """The preflight: settings, layout and class count (directory names only, nothing listed or decoded)."""
    defaults = {"image_size": 224, "resize": 256, "lighting": 0.1, "loader_workers": "auto", "max_unreadable": 1000,
                "decoder": "pil"}
    settings = {k: options.get(k, v) for k, v in defaults.items()}
    check_options(name, **settings)
    root, classes = check_root(name, options.get("data_root"), options.get("test_split", "val"))
    if len(classes) != n_classes:
        raise DataError(f"{name}: {root / 'train'} has {len(classes)} class folders but dataset.n_classes={n_classes}; "
                        f"set dataset.n_classes={len(classes)} (for study.sample too)")


def _streaming(name: str, test_split: str) -> Any:
    """The registered builder of `name`: `stream_dataset` with its options (so unknown ones are refused)."""
    def build(**options: Any) -> StreamData:
        return stream_dataset(name, **{"test_split": test_split, **options})

    own = inspect.signature(stream_dataset)
    params = [p.replace(default=test_split) if p.name == "test_split" else p for p in own.parameters.values()
              if p.name != "name"]
    build.__signature__ = own.replace(parameters=params)  # what the preflight binds the options against
    build.__doc__ = f"`{name}`: a train/<class>/, {test_split}/<class>/ image folder streamed by loader workers."
    register_dataset(name, preflight=lambda options, n: check(name, options, n), streams=True)(build)
    return build


imagenet = _streaming("imagenet", "val")  # ImageNet-1K, or any folder in its layout
imagestream = _streaming("imagestream", "test")  # any image folder too large for memory
