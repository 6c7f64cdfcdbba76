"""The study directory on disk: the cells file, one JSON record per run, written atomically.

Layout under `<study_dir>`:
    study.json                       how the sample was drawn (space, n, seed, ...)
    cells.jsonl                      one sampled cell per line
    runs/<objective>/<dataset>-<budget>-<identity>/seed<k>/<cell_id>.json
                                     one record per run; `identity` hashes everything that defines the
                                     run besides cell and seed, so a changed budget is a new run, never
                                     a skip, and never overwrites an older result
    analysis/                        written by analysis.correlate
"""

from __future__ import annotations

from study.errors import UserError

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

CELLS_FILE = "cells.jsonl"
STUDY_FILE = "study.json"
RUNS_DIR = "runs"


class StudyError(UserError):
    """The study directory is missing, unreadable or inconsistent."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_json_atomic(path: Path, obj: Any) -> None:
    """Atomically write `obj` as pretty JSON."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def identity_hash(identity: dict[str, Any]) -> str:
    """Short, stable hash of a run's defining configuration."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def run_dir(study_dir: Path, objective: str, dataset: str, budget: str, identity: str, seed: int) -> Path:
    """Folder holding the records of one (objective, dataset, budget, identity, seed)."""
    return Path(study_dir) / RUNS_DIR / objective / f"{dataset}-{budget}-{identity}" / f"seed{seed}"


def read_record(path: Path) -> dict[str, Any] | None:
    """A run record, or None (with a warning naming the file) when it is unreadable or malformed."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("ignoring unreadable record %s (%s)", path, e)
        return None
    if not isinstance(rec, dict) or "status" not in rec or "cell_id" not in rec:
        log.warning("ignoring malformed record %s (no status or cell_id)", path)
        return None
    return rec


def iter_records(study_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable record under `<study_dir>/runs`, in a stable order."""
    for path in sorted((Path(study_dir) / RUNS_DIR).glob("**/*.json")):
        rec = read_record(path)
        if rec is not None:
            yield path, rec


def read_cells(study_dir: Path) -> list[dict[str, Any]]:
    """The sampled cells, or StudyError telling the user to sample first."""
    path = Path(study_dir) / CELLS_FILE
    if Path(study_dir).exists() and not Path(study_dir).is_dir():
        raise StudyError(f"study_dir {str(study_dir)!r} is a file; point study_dir at a folder")
    if not path.exists():
        raise StudyError(
            f"no sample in {study_dir}: run `python -m study.sample study_dir={study_dir}` first"
        )
    cells = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cell = json.loads(line)
        except json.JSONDecodeError as e:
            raise StudyError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix the line or re-sample") from None
        if not isinstance(cell, dict) or not {"id", "arch"} <= cell.keys():
            raise StudyError(f"{path}:{lineno}: a cell needs 'id' and 'arch'; fix the line or re-sample")
        cells.append(cell)
    if not cells:
        raise StudyError(f"{path} holds no cells; re-sample with `python -m study.sample`")
    return cells


def has_runs(study_dir: Path) -> bool:
    """Whether any run record exists in the study."""
    return any((Path(study_dir) / RUNS_DIR).glob("**/*.json"))
