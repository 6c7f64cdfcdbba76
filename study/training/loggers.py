"""Per-epoch experiment tracking of runs and searches, off by default (`logger=none`; docs/outputs.md).

With `logger=csv` or `logger=tensorboard` each job logs its epochs as they finish under
`<study_dir>/logs/<logger>/`, at its record's place in the study without the `.json`:
`logs/csv/runs/<objective>/<dataset>-<budget>-<hash>/seed<k>/<cell_id>.csv`, or one TensorBoard run per record
in the folder `logs/tensorboard/runs/.../seed<k>/<cell_id>/`. The trainer's per-epoch callback feeds it; no
training step does anything for it, and with `logger=none` nothing here is created at all.

Tracking is not part of what a job computes: it stays out of a job's identity (study/training/run.py), so a
finished run is skipped whatever the logger. A logger that fails (a full disk, a broken install) costs one
warning line and that job's tracking, never the job or its record (`Tracker`).

CSV: one file per job. One process trains a run at a time (its claim), but a study's runs may be trained by many
processes on many hosts at once, and appends to one shared file on NFS are neither atomic nor reliably locked.
Each row reaches its file in one os.write of whole lines on an O_APPEND descriptor, cut back if the write falls
short; a resumed job's file is first rewritten without a line torn by a crash and without the rows past its
checkpoint, so it holds every epoch once.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from study.errors import UserError
from study.registry import Registry
from study.store.records import write_atomic

log = logging.getLogger(__name__)

LOGS_DIR = "logs"
PACKAGE = "unnas-study"  # whose extras install a logger's package: pip install 'unnas-study[tensorboard]'


@dataclass(frozen=True)
class LoggerSettings:
    """Which logger a command's jobs use, for which study (`none`: no tracking at all)."""

    name: str = "none"
    study_dir: Path = Path("studies/default")
    options: dict[str, Any] = field(default_factory=dict)  # the logger's own settings (conf/logger/<name>.yaml)

    @property
    def on(self) -> bool:
        """Whether jobs log their epochs."""
        return self.name != "none"

    def place(self, record: Path) -> Path:
        """Where the job whose record is `record` logs: the record's place in the study under logs/<name>/,
        without its suffix."""
        try:
            inside = Path(record).relative_to(self.study_dir)
        except ValueError:  # a record outside the study folder: keep its run-folder layout
            inside = Path(*Path(record).parts[-5:])
        return self.study_dir / LOGS_DIR / self.name / inside.with_suffix("")


class EpochLogger:
    """One job's epochs to one tracker (subclasses); `fields` name the job (study, objective, seed, cell, ...),
    `first` is how many epochs it had done when it started (a resumed job: an earlier attempt logged those)."""

    package: ClassVar[str | None] = None  # the package it imports; refused before anything runs when missing

    def __init__(self, place: Path, fields: dict[str, Any], first: int, options: dict[str, Any]) -> None:
        self.place, self.fields, self.first, self.options = place, fields, first, options

    def write(self, row: dict[str, Any]) -> None:
        """Log one finished epoch: `row` holds `epoch` (counted from 1) and the epoch's values."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release what the logger holds."""


LOGGERS: Registry[type[EpochLogger]] = Registry("logger")
register_logger = LOGGERS.register


def check(settings: LoggerSettings) -> None:
    """Refuse, in one line naming the fix, a logger whose package is not installed (before anything runs)."""
    if not settings.on:
        return
    package = LOGGERS.get(settings.name).package
    if package and importlib.util.find_spec(package) is None:
        raise UserError(f"logger={settings.name} needs the {package} package, which is not installed: "
                        f"pip install '{PACKAGE}[{settings.name}]' (or log to CSV files with logger=csv)")


class Tracker:
    """A job's logger behind a guard: any failure logs one warning and turns tracking off for this job alone."""

    def __init__(self, settings: LoggerSettings, record: Path, fields: dict[str, Any], first: int) -> None:
        self.name, self.record, self.logger = settings.name, record, None
        try:
            self.logger = LOGGERS.get(settings.name)(settings.place(record), fields, first, settings.options)
        except Exception as e:  # tracking is never worth a run
            self._stop(e)

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one finished epoch (nothing once the logger has failed)."""
        if self.logger is not None:
            try:
                self.logger.write(row)
            except Exception as e:
                self._stop(e)

    def close(self) -> None:
        """Close the logger (a failure to close is a failure like any other)."""
        if self.logger is not None:
            logger, self.logger = self.logger, None
            try:
                logger.close()
            except Exception as e:
                self._stop(e)

    def _stop(self, e: Exception) -> None:
        log.warning("logger %s stopped for %s (%s: %s); training goes on and its record is written as usual",
                    self.name, self.record, type(e).__name__, e)
        logger, self.logger = self.logger, None
        if logger is not None:
            try:
                logger.close()
            except Exception:
                pass  # already warned once for this job


def open_tracker(settings: LoggerSettings, record: Path, fields: dict[str, Any], first: int) -> Tracker | None:
    """The guarded logger of the job whose record is `record`, or None when logging is off."""
    return Tracker(settings, record, fields, first) if settings.on else None


def scalars(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The plain values of a history entry (numbers, strings, None), one level of dicts as `key/sub`."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and not prefix:
            out.update(scalars(value, f"{key}/"))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[prefix + key] = value
    return out


def csv_line(values: list[Any]) -> str:
    """One CSV line (None as an empty field)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(values)
    return text.getvalue()


def append_lines(path: Path, text: str) -> None:
    """Append whole lines in one write on an O_APPEND descriptor; a short or failed write (a full disk) is cut
    back before it raises, so the file never ends in a torn line."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"wrote {written} of {len(data)} bytes (disk full?)")
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def keep_epochs(path: Path, first: int) -> list[str] | None:
    """Ready a job's CSV to go on after epoch `first`: drop a line torn by a crash and the rows of later epochs
    (logged by an attempt that got past its last checkpoint). Returns the file's columns (None: no file yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    whole = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(whole)))
    if not rows:
        if text:
            write_atomic(path, "")
        return None
    columns, body = rows[0], rows[1:]
    at = columns.index("epoch") if "epoch" in columns else -1
    kept = [r for r in body if 0 <= at < len(r) and r[at].isdigit() and int(r[at]) <= first]
    if kept != body or whole != text:
        write_atomic(path, "".join(csv_line(r) for r in [columns, *kept]))
    return columns


@register_logger("csv")
class CsvLog(EpochLogger):
    """One CSV file per job, one row per epoch: the job's fields, then the epoch's values."""

    def __init__(self, place: Path, fields: dict[str, Any], first: int, options: dict[str, Any]) -> None:
        super().__init__(place, fields, first, options)
        self.path = place.parent / f"{place.name}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = keep_epochs(self.path, first)

    def write(self, row: dict[str, Any]) -> None:
        values = {**self.fields, **row}
        header = ""
        if self.columns is None:
            self.columns, header = list(values), csv_line(list(values))
        append_lines(self.path, header + csv_line([values.get(c) for c in self.columns]))


@register_logger("tensorboard")
class TensorBoardLog(EpochLogger):
    """One TensorBoard run per job (its folder), each number of an epoch a scalar at step `epoch`."""

    package = "tensorboard"

    def __init__(self, place: Path, fields: dict[str, Any], first: int, options: dict[str, Any]) -> None:
        super().__init__(place, fields, first, options)
        from torch.utils.tensorboard import SummaryWriter

        # A resumed job hides what an earlier attempt logged past its checkpoint.
        self.writer = SummaryWriter(str(place), purge_step=first + 1 if first else None)
        if not first:
            self.writer.add_text("job", ", ".join(f"{k}={v}" for k, v in fields.items()), 0)

    def write(self, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # an epoch is minutes of work: on disk before the next one starts

    def close(self) -> None:
        self.writer.close()
