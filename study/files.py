"""File permissions and locks shared by every floor that writes a study's files (records, caches, checkpoints)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def file_mode() -> int:
    """Permissions a plain `open()` would give a new file under the current umask (0o666 & ~umask).

    Files are written to a private `mkstemp` temporary and renamed into place; chmod-ing the temporary to
    this mode first lets teammates on a shared filesystem read a study, as they could any other file.
    """
    try:  # Linux states the umask; reading it there avoids the set-and-restore race of os.umask
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created when missing, its folder too) for the block.

    Opened read-only: a lock file another user of a shared study created with their umask still opens.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
