"""A progress bar for a person at a terminal: a command's per-job progress lines as one line redrawn in place.

Only while stderr is a terminal (`bar`): each finished job redraws `label [#####.....] 3/10, 1 failed, 4m10s left`
on stderr, and a console handler that prints on a terminal leaves out the lines the bar now says (a job
finished as planned); every other line (a failure, a skip, a warning) is printed above the bar as before. The
log file, and output sent to a file or a pipe (batch jobs), keep every line unchanged. No dependency: `\\r` and
one ANSI erase.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from dataclasses import dataclass
from typing import Iterator, TextIO

PROGRESS = "progress"  # the log-record attribute (`extra=`) that makes a line a progress line
ERASE = "\r\x1b[K"  # back to the start of the line and erase it


@dataclass(frozen=True)
class Tally:
    """What the bar shows: `done` of `total` jobs of `label`, how many failed, the time left (`4m10s`)."""

    label: str
    done: int
    total: int
    failed: int = 0
    left: str = ""
    quiet: bool = False  # the line carrying it only reports a job finished as planned: on a terminal the bar says so


def render(tally: Tally, columns: int = 80) -> str:
    """The bar's line, shorter than `columns` (the label is cut first): `label [####......] 3/10, 4m10s left`."""
    share = min(1.0, tally.done / tally.total) if tally.total > 0 else 1.0
    width = max(10, min(30, columns // 4))
    filled = int(width * share)
    tail = f" [{'#' * filled}{'.' * (width - filled)}] {tally.done}/{tally.total}"
    tail += f", {tally.failed} failed" if tally.failed else ""
    tail += f", {tally.left} left" if tally.left and tally.done < tally.total else ""
    room = columns - 1 - len(tail)
    label = tally.label if len(tally.label) <= room else tally.label[:max(0, room - 3)] + "..."
    return (label + tail)[:max(0, columns - 1)]


class Drawer(logging.Handler):
    """Draws the bar on `stream` from each progress record; prints nothing else."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream, self.line = stream, ""

    def emit(self, record: logging.LogRecord) -> None:
        tally = getattr(record, PROGRESS, None)
        if isinstance(tally, Tally):
            self.line = render(tally, shutil.get_terminal_size().columns)
            self.draw()

    def draw(self) -> None:
        """Redraw the bar (after a line printed above it)."""
        if self.line:
            self.stream.write(ERASE + self.line)
            self.stream.flush()

    def erase(self) -> None:
        """Erase the bar, so the next line prints where it was."""
        if self.line:
            self.stream.write(ERASE)
            self.stream.flush()


class AboveBar(logging.Handler):
    """A console handler printing on a terminal: quiet progress lines left to the bar, others printed above it."""

    def __init__(self, inner: logging.Handler, drawer: Drawer) -> None:
        super().__init__(inner.level)
        self.inner, self.drawer = inner, drawer

    def emit(self, record: logging.LogRecord) -> None:
        tally = getattr(record, PROGRESS, None)
        if isinstance(tally, Tally) and tally.quiet:
            return
        self.drawer.erase()
        self.inner.handle(record)
        self.drawer.draw()


def on_terminal(handler: logging.Handler) -> bool:
    """Whether `handler` prints on a terminal (a console handler; a log file is never one)."""
    stream = getattr(handler, "stream", None)
    return (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and stream is not None and hasattr(stream, "isatty") and stream.isatty())


@contextlib.contextmanager
def bar(stream: TextIO | None = None) -> Iterator[None]:
    """Within the block, progress lines drive a bar on `stream` (stderr) when it is a terminal; else nothing
    changes. The bar's last state stays on screen afterwards."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    # No handler: logging is not set up (a library caller), and a bar would silence Python's last-resort one.
    if not (root.handlers and hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    drawer = Drawer(stream)
    before = list(root.handlers)
    root.handlers = [AboveBar(h, drawer) if on_terminal(h) else h for h in before] + [drawer]
    try:
        yield
    finally:
        root.handlers = before
        if drawer.line:
            stream.write("\n")
            stream.flush()
