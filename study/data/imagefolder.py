"""Image folders as researchers keep them: `train/<class>/*` and `test/<class>/*` images.

Decoded once (PIL) into a uint8 cache `<cache_dir>/imagefolder-<root hash>-<size>.pt`; study.train sets
cache_dir to `<study_dir>/cache`, so the user's folder may be read-only. The cache stores a fingerprint of
the folder (relative path, size and mtime of every image, and the image size): a later run reuses the
cache when the fingerprint matches and rebuilds it when any image was added, removed or changed. The
cache is written atomically, so runs racing to build it (SLURM array jobs) each leave a whole file.

Classes are the sorted sub-folder names of `train/` (labels 0..K-1); `test/` may hold a subset of them.
Images may sit in nested folders below a class folder; files without an image extension and hidden files
are ignored. Every image is converted to RGB; one whose size is not `image_size` x `image_size` is
resized (bilinear, antialiased) so that its shorter side is `image_size`, then centre-cropped.
Mean and std are computed over the training images unless the config gives them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from study.data.base import (DataError, ImageData, channel_stats_chunked, check_subset, finish, register_dataset,
                             stats_from_config)
from study.data.listing import IMAGE_EXTENSIONS, image_files
from study.files import file_mode

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
LAYOUT = "train/<class>/* and test/<class>/* images"
_CACHE_VERSION = 1  # part of the fingerprint: bump when decoding changes so old caches are rebuilt

Listing = dict[str, list[tuple[str, int, int, int]]]  # split -> [(relative path, label, size, mtime_ns)]


def check_root(data_root: str | None) -> tuple[Path, list[str]]:
    """The folder and its class names; DataError naming the fix when the layout is wrong (cheap: no decoding)."""
    if not data_root:
        raise DataError(f"dataset=imagefolder needs data_root=PATH, a folder with {LAYOUT}")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataError(f"imagefolder: data_root {str(root)!r} is not a folder; point data_root at a folder with {LAYOUT}")
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"imagefolder: {root} has no {split}/ folder; expected {LAYOUT}")
    classes = sorted(d.name for d in os.scandir(root / "train") if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"imagefolder: {root / 'train'} has no class folders; expected {LAYOUT}")
    extra = sorted(d.name for d in os.scandir(root / "test") if d.is_dir() and not d.name.startswith(".")
                   and d.name not in classes)
    if extra:
        raise DataError(f"imagefolder: test/ has class folder(s) {extra} that train/ lacks; "
                        "every test class needs training images")
    return root, classes


def scan(root: Path, classes: list[str]) -> Listing:
    """Every image of both splits with its label, byte size and mtime (what the fingerprint hashes)."""
    listing: Listing = {}
    for split in SPLITS:
        rows = []
        for label, name in enumerate(classes):
            folder = root / split / name
            if not folder.is_dir():
                continue
            files = image_files(folder, "imagefolder", stat=True)
            if split == "train" and not files:
                raise DataError(f"imagefolder: {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            for rel, st in files:
                rows.append((f"{split}/{name}/{rel}", label, st.st_size, st.st_mtime_ns))
        if not rows:
            raise DataError(f"imagefolder: {root / split} holds no images; expected {LAYOUT}")
        listing[split] = rows
    return listing


def folder_fingerprint(listing: Listing, classes: list[str], image_size: int) -> str:
    """Hash of what decoding depends on: the files (path, size, mtime), the classes and the image size."""
    blob = json.dumps({"v": _CACHE_VERSION, "size": image_size, "classes": classes, "files": listing})
    return hashlib.sha1(blob.encode()).hexdigest()


def fit(image: Any, size: int) -> Any:
    """A PIL image resized so its shorter side is `size` (bilinear, antialiased), centre-cropped to a square."""
    from PIL import Image

    w, h = image.size
    if (w, h) == (size, size):
        return image
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode(root: Path, rows: list[tuple[str, int, int, int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode images into (N, 3, size, size) uint8 and labels (N,) int64."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for i, (rel, _, _, _) in enumerate(rows):
        try:
            with Image.open(root / rel) as im:
                out[i] = np.asarray(fit(im.convert("RGB"), size))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"imagefolder: cannot decode {root / rel} ({e}); fix or remove the file") from None
    labels = torch.tensor([row[1] for row in rows], dtype=torch.int64)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), labels


def _cache_path(cache_dir: str, root: Path, image_size: int) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"imagefolder-{key}-{image_size}.pt"


def _read_cache(path: Path, wanted: str) -> dict[str, Any] | None:
    """The cached tensors if the file exists, loads, and matches the folder's fingerprint."""
    if not path.is_file():
        return None
    try:
        # Memory-mapped: every worker reads the same pages from the page cache instead of holding a copy.
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # a torn or foreign file is rebuilt, never trusted
        log.warning("imagefolder: ignoring unreadable cache %s (%s)", path, e)
        return None
    return blob if isinstance(blob, dict) and blob.get("fingerprint") == wanted else None


def _write_cache(path: Path, blob: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, file_mode())  # mkstemp makes it private; follow the umask so others may read it
        try:
            torch.save(blob, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as e:  # a read-only cache location costs a decode per run, not the study
        log.warning("imagefolder: cannot write the cache %s (%s); decoding again next time", path, e)


def load_folder(root: Path, classes: list[str], image_size: int, cache_dir: str | None) -> tuple[dict[str, Any], str]:
    """The decoded folder (from the cache when it is current) and whether the cache was 'hit' or 'built'."""
    listing = scan(root, classes)
    wanted = folder_fingerprint(listing, classes, image_size)
    path = _cache_path(cache_dir, root, image_size) if cache_dir else None
    blob = _read_cache(path, wanted) if path is not None else None
    if blob is not None:
        log.info("imagefolder: using the cache %s", path)
        return blob, "hit"
    log.info("imagefolder: decoding %d images from %s", sum(len(r) for r in listing.values()), root)
    blob = {"fingerprint": wanted, "classes": classes}
    for split in SPLITS:
        blob[f"{split}_x"], blob[f"{split}_y"] = decode(root, listing[split], image_size)
    blob["mean"], blob["std"] = channel_stats_chunked(blob["train_x"])
    if path is not None:
        _write_cache(path, blob)
    return blob, "built"


def check(options: dict[str, Any], n_classes: int) -> None:
    """The folder's layout and its class count against dataset.n_classes (cheap: no decoding)."""
    root, classes = check_root(options.get("data_root"))
    if len(classes) != n_classes:
        raise DataError(f"imagefolder: {root / 'train'} has {len(classes)} class folders but dataset.n_classes="
                        f"{n_classes}; set dataset.n_classes={len(classes)} (for study.sample too)")


@register_dataset("imagefolder", preflight=check)
def imagefolder(data_root: str | None = None, cache_dir: str | None = None, image_size: int = 32,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                train_subset: int = 0, test_subset: int = 0) -> ImageData:
    """A folder of train/<class>/* and test/<class>/* images, decoded once into a uint8 cache."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise DataError(f"imagefolder: image_size must be an integer of at least 8, got {image_size!r}")
    check_subset(train_subset, "train_subset")  # a bad value is refused before decoding, not after
    check_subset(test_subset, "test_subset")
    root, classes = check_root(data_root)
    blob, cache = load_folder(root, classes, image_size, cache_dir)
    parts = {k: blob[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    mean_t = stats_from_config(mean, "mean")
    std_t = stats_from_config(std, "std")
    return finish("imagefolder", parts, len(classes), blob["mean"] if mean_t is None else mean_t,
                  blob["std"] if std_t is None else std_t, train_subset, test_subset,
                  {"image_size": image_size, "source": str(root), "classes": classes, "cache": cache})
