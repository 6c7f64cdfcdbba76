"""The UnNAS paper's cells, rebuilt from a checkout of facebookresearch/unnas: `python -m study.spaces.unnas PATH`.

The paper's sample-based experiments trained 500 DARTS genotypes and 500 NAS-Bench-101 modules, one
config per cell: configs/sample_based/{darts,nas_bench}/<dataset>/<task>/<ID>.yaml, the same IDs in every
dataset and task folder. DARTS configs hold `NAS.CUSTOM_GENOTYPE` = [normal, normal_concat, reduce,
reduce_concat]; NAS-Bench-101 configs hold `NAS.MATRIX` and `NAS.OPS`. This module reads the CIFAR-10
classification folder, checks that every other folder names the same cells, and writes the shipped
lists study/spaces/{darts,nb101}/data/unnas.jsonl.gz: one JSON object per cell, `{"paper_id", "arch"}`,
sorted by ID, gzipped without a timestamp so a rebuild is byte-identical. It lives here, beside the
files it writes, because it needs only the cell values of this floor and PyYAML (the data are MIT
licensed, see NOTICE.md beside them; no unnas code is used).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import yaml

from study.spaces.base import SpaceError
from study.spaces.darts.cell import DartsCell
from study.spaces.nb101.cell import NB101Cell

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SPACES = {"darts": "darts", "nb101": "nas_bench"}  # our space name -> unnas' folder
OUT = {space: HERE / space / "data" / "unnas.jsonl.gz" for space in SPACES}
DATASETS, TASKS = ("cifar10", "imagenet"), ("cls", "rot", "col", "jig")


def cell_of(space: str, config: dict) -> DartsCell | NB101Cell:
    """The cell a unnas sample-based config trains."""
    nas = config.get("NAS") or {}
    if space == "darts":
        normal, normal_concat, reduce, reduce_concat = nas["CUSTOM_GENOTYPE"]
        if list(normal_concat) != [2, 3, 4, 5] or list(reduce_concat) != [2, 3, 4, 5]:
            raise SpaceError(f"concat {normal_concat}, {reduce_concat}: this space concatenates nodes 2..5")
        return DartsCell.from_lists(normal, reduce)
    return NB101Cell.from_lists(nas["MATRIX"], nas["OPS"])


def read_folder(space: str, folder: Path) -> dict[str, str]:
    """Paper ID -> the cell's string form, for every config in one task folder."""
    cells = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            cells[path.stem] = cell_of(space, yaml.safe_load(path.read_text())).to_str()
        except (SpaceError, KeyError, TypeError, ValueError) as e:
            raise SpaceError(f"{path}: not a cell of space {space!r} ({e})") from None
    if not cells:
        raise SpaceError(f"{folder} holds no config; give the root of a unnas checkout (the folder with configs/)")
    return cells


def read_checkout(root: Path, space: str) -> dict[str, str]:
    """The paper's cells of one space, checked to be the same in every dataset and task folder."""
    base = Path(root) / "configs" / "sample_based" / SPACES[space]
    cells = read_folder(space, base / "cifar10" / "cls")
    for dataset in DATASETS:
        for task in TASKS:
            folder = base / dataset / task
            if folder.is_dir() and (dataset, task) != ("cifar10", "cls"):
                other = read_folder(space, folder)
                if other != cells:
                    differ = sorted(set(other.items()) ^ set(cells.items()))[:1]
                    raise SpaceError(f"{folder} names other cells than cifar10/cls (first difference: {differ})")
    return cells


def encode(cells: dict[str, str]) -> bytes:
    """The shipped file's bytes: JSON lines sorted by paper ID, gzipped with no name and mtime 0."""
    text = "".join(json.dumps({"paper_id": pid, "arch": arch}) + "\n" for pid, arch in sorted(cells.items()))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def write(path: Path, data: bytes) -> None:
    """Replace `path` atomically (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rebuild(root: Path, out: dict[str, Path] | None = None) -> dict[str, int]:
    """Write each space's list from the checkout at `root`; returns the number of cells per space."""
    out = out or OUT
    counts = {}
    for space in SPACES:
        cells = read_checkout(root, space)
        write(out[space], encode(cells))
        counts[space] = len(cells)
        log.info("wrote %d %s cells to %s", len(cells), space, out[space])
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command line: the checkout's path; one line and exit 2 when it is not one."""
    parser = argparse.ArgumentParser(prog="python -m study.spaces.unnas", description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="root of a facebookresearch/unnas checkout (holds configs/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rebuild(args.checkout)
    except SpaceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
