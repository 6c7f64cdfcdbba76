"""The image files below a folder, for every dataset read from an image tree (imagefolder, imagestream, imagenet).

Symbolic links are followed (class folders linked in from another disk are common), each folder once per
path: a link that leads back to a folder above it would list the same images without end, so it is refused
in one line naming the link, as is a link that leads nowhere.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from study.data.base import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


def is_image(name: str) -> bool:
    """Whether a file name has one of the image extensions (any case)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def image_files(folder: Path, dataset: str, stat: bool = False) -> list[tuple[str, os.stat_result | None]]:
    """(path relative to `folder`, its stat when `stat`) of every image below `folder`, sorted by path;
    hidden files and folders are skipped."""
    found: list[tuple[str, os.stat_result | None]] = []
    folder = Path(folder)
    _walk(folder, "", dataset, stat, {_key(os.stat(folder))}, found)
    return found


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _walk(folder: Path, prefix: str, dataset: str, stat: bool, above: set[tuple[int, int]],
          found: list[tuple[str, os.stat_result | None]]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise _unreadable(dataset, folder, e) from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_symlink():
                os.stat(entry.path)  # a link to itself or to nothing: ELOOP or ENOENT here, not deep below
            if entry.is_dir():
                key = _key(entry.stat())
                if key in above:
                    raise OSError(errno.ELOOP, "leads back to a folder above it")
                _walk(Path(entry.path), f"{prefix}{entry.name}/", dataset, stat, above | {key}, found)
            elif is_image(entry.name):
                found.append((prefix + entry.name, entry.stat() if stat else None))
        except OSError as e:
            raise _unreadable(dataset, Path(entry.path), e) from None


def _unreadable(dataset: str, path: Path, e: OSError) -> DataError:
    if e.errno == errno.ELOOP:
        return DataError(f"{dataset}: {path} is a symlink loop ({e.strerror}); remove the link or point it at a "
                         "folder outside the data")
    return DataError(f"{dataset}: cannot read {path} ({e.strerror or e}); fix its permissions or remove it "
                     "(a link that leads nowhere, a file being deleted)")
