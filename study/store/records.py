"""The study directory on disk: the cells file, one JSON record per run, written atomically.

Layout under `<study_dir>`:
    study.json                       how the sample was drawn (space, n, seed, ...)
    cells.jsonl                      one sampled cell per line
    runs/<objective>/<dataset>-<budget>-<identity>/seed<k>/<cell_id>.json
                                     one record per run; `identity` hashes everything that defines the
                                     run besides cell and seed, so a changed budget is a new run, never
                                     a skip, and never overwrites an older result
    runs/.../<cell_id>.json.claim    held while a worker trains the run (study.store.claims)
    runs/.../<name>.corrupt-<time>   a record that failed its integrity check, moved aside (kept for you)
    analysis/                        written by analysis.correlate

A record carries a `checksum` over its other fields (`record_format` among them); a record whose checksum
does not match (bit rot, a hand edit, a copy cut short), or that has a format but no checksum, is treated
like an unreadable one. Records written before checksums existed (no `record_format`) are accepted when
they parse and have the required fields.
"""

from __future__ import annotations

from study.errors import UserError
from study.files import file_mode

import contextlib
import contextvars
import glob
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

CELLS_FILE = "cells.jsonl"
STUDY_FILE = "study.json"
RUNS_DIR = "runs"
CHECKSUM = "checksum"
FORMAT = "record_format"  # present in every checksummed record, so a mangled checksum key is not "old"


class StudyError(UserError):
    """The study directory is missing, unreadable or inconsistent."""


class WriteError(UserError):
    """A file of the study could not be written (disk full, read-only folder, ...)."""


class NotOwner(RuntimeError):
    """A worker tried to write a record whose claim it no longer holds (it was taken over as stale)."""


def write_error(path: Path, e: OSError) -> WriteError:
    """The one-line error for a file of the study that could not be written."""
    return WriteError(f"cannot write {path}: {e.strerror or e}; free disk space or make the folder "
                      "writable, then rerun the same command (finished runs are kept)")


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a partial one.

    Any OSError (no space, read-only folder, file-size limit) becomes a one-line WriteError; the old
    file stays as it was and the temporary file is removed.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, file_mode())  # mkstemp makes it private (0600); the renamed file follows the umask
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise write_error(path, e) from None
    except BaseException:
        _discard(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Atomically write `obj` as pretty JSON."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def content_checksum(rec: dict[str, Any]) -> str:
    """SHA-256 over a record's fields other than the checksum itself, in a canonical JSON form."""
    body = {k: v for k, v in rec.items() if k != CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(rec: dict[str, Any]) -> dict[str, Any]:
    """A copy of `rec` with its format and checksum fields set."""
    body = {**rec, FORMAT: 1}
    return {**body, CHECKSUM: content_checksum(body)}


_GUARD: contextvars.ContextVar[tuple[Callable[[Path], bool], Any] | None] = \
    contextvars.ContextVar("record_write_guard", default=None)


@contextlib.contextmanager
def write_guard(may_write: Callable[[Path], bool],
                stamp: dict[str, Any] | Callable[[Path], dict[str, Any]] | None = None) -> Iterator[None]:
    """Within this block, `write_record` writes only where `may_write(path)` holds, adding `stamp`'s fields
    (a dict, or a function of the record's path giving them)."""
    token = _GUARD.set((may_write, stamp if callable(stamp) else dict(stamp or {})))
    try:
        yield
    finally:
        _GUARD.reset(token)


def may_write(path: Path) -> bool:
    """Whether the active write guard lets this process write the record `path` (True outside a guard)."""
    guard = _GUARD.get()
    return guard is None or guard[0](Path(path))


def write_record(path: Path, rec: dict[str, Any]) -> None:
    """Write a run record with its checksum, atomically; NotOwner when the active guard refuses."""
    guard = _GUARD.get()
    if guard is not None:
        may_write, stamp = guard
        if not may_write(Path(path)):
            raise NotOwner(f"not writing {path}: this worker no longer holds its claim")
        rec = {**rec, **(stamp(Path(path)) if callable(stamp) else stamp)}
    write_json_atomic(path, seal(rec))


def record_problem(rec: Any) -> str | None:
    """Why a parsed record is not valid (None when it is)."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if "status" not in rec or "cell_id" not in rec:
        return "no status or cell_id"
    if CHECKSUM in rec:
        if rec[CHECKSUM] != content_checksum(rec):
            return "checksum mismatch"
    elif FORMAT in rec:
        return "checksum missing"
    return None


def read_record(path: Path, quarantine_bad: bool = False) -> dict[str, Any] | None:
    """A valid run record, or None with a warning naming the file (moved aside when `quarantine_bad`)."""
    try:
        rec = json.loads(Path(path).read_bytes())
        problem = record_problem(rec)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        problem = f"unreadable: {e}"
    if problem is None:
        return rec
    if quarantine_bad:
        quarantine(Path(path), problem)
    else:
        log.warning("ignoring corrupted record %s (%s)", path, problem)
    return None


def is_complete(rec: dict[str, Any] | None, identity: str | None = None) -> bool:
    """Whether `rec` is the record of a finished job (a run or a search), of `identity` when one is given.

    The one place this is decided: planning, claimed execution, status reports and derived lists ask here.
    """
    return (rec is not None and rec.get("status") == "complete"
            and (identity is None or rec.get("identity") == identity))


def complete_at(path: Path, identity: str | None = None, quarantine_bad: bool = False) -> bool:
    """Whether the record at `path` is complete (see `is_complete`); a corrupted one is not (moved aside
    when `quarantine_bad`)."""
    path = Path(path)
    return path.exists() and is_complete(read_record(path, quarantine_bad), identity)


def quarantine(path: Path, reason: str) -> Path | None:
    """Move a corrupted file aside to `<name>.corrupt-<time>` with a warning; returns where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    k = 1
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{k}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None  # someone else moved it first
    except OSError as e:
        raise WriteError(f"cannot move corrupted {path} aside: {e.strerror}; move or delete it by hand") from None
    log.warning("moved corrupted %s aside to %s (%s); it will be redone", path, target.name, reason)
    return target


def clean_temporaries(path: Path) -> int:
    """Remove temporary files a killed writer left next to the record `path` or its checkpoint (the same name
    with `.ckpt`, study/training/checkpoint.py); call only while owning `path`."""
    path, removed = Path(path), 0
    for name in (path.name, path.with_suffix(".ckpt").name):
        for tmp in path.parent.glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def identity_hash(identity: dict[str, Any]) -> str:
    """Short, stable hash of a run's defining configuration."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def run_dir(study_dir: Path, objective: str, dataset: str, budget: str, identity: str, seed: int) -> Path:
    """Folder holding the records of one (objective, dataset, budget, identity, seed)."""
    return Path(study_dir) / RUNS_DIR / objective / f"{dataset}-{budget}-{identity}" / f"seed{seed}"


def iter_records(study_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every valid record under `<study_dir>/runs`, in a stable order; corrupted ones are skipped with a warning."""
    for path in sorted((Path(study_dir) / RUNS_DIR).glob("**/*.json")):
        rec = read_record(path)
        if rec is not None:
            yield path, rec


def writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (or, when it does not exist yet, in its nearest ancestor).

    Probed by creating and removing a temporary file: permission bits say nothing for root, and a
    read-only mount or a network file system can refuse what `os.access` allows.
    """
    folder = Path(folder).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
    except OSError:
        return False
    os.close(fd)
    _discard(tmp)
    return True


# Room a command needs before it starts: Hydra writes its config files and a log (about 30 kB), training a
# claim, a checkpoint and a record. An empty probe file fits on a full disk; these do not.
MIN_FREE_BYTES = 256 << 10


def free_bytes(folder: Path) -> int | None:
    """Bytes free for this user on the disk of `folder` (or its nearest existing ancestor); None if unknown."""
    folder = Path(folder).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def room_to_write(folder: Path, what: str, read_only_fix: str) -> None:
    """WriteError when `folder` is read-only (`read_only_fix` says what to do) or its disk is (nearly) full."""
    if not writable(folder):
        raise WriteError(f"{what} {folder} is read-only; {read_only_fix}")
    free = free_bytes(folder)
    if free is not None and free < MIN_FREE_BYTES:
        raise WriteError(f"no space left on the disk of {what} {folder} ({free // 1024} kB free); free disk "
                         "space, then rerun the same command (nothing was written; finished runs are kept)")


def has_runs(study_dir: Path) -> bool:
    """Whether any run of the study exists: a record, a claim (in training now) or a checkpoint."""
    runs = Path(study_dir) / RUNS_DIR
    return any(any(runs.glob(f"**/*{suffix}")) for suffix in (".json", ".json.claim", ".ckpt"))
