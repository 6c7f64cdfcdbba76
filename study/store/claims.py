"""One claim per run, so concurrent `study.train` commands on one study train every run once.

A claim is a small JSON file next to the run's record, `<record>.claim`, naming its owner (host, pid, a
random token, start time). It is created atomically: the owner is written to a private temporary file
which is then hard-linked to the claim's name; `link` fails when the name exists, so exactly one worker
wins, and nobody ever sees a claim without its owner. While the run trains, a background thread touches
the claim's mtime every `heartbeat_s` (the heartbeat). A claim is stale when its heartbeat is older
than `stale_after_s`, or at once when its owner ran on this host and that pid is gone (SIGKILL, OOM).

Taking over a stale claim: rename it to a name private to the taker, then check that what was moved is
the stale claim that was read (a fast competitor may have replaced it meanwhile; then it is put back)
and link a fresh claim. Two takers can never both hold a claim for long: every owner checks its token
before it writes a record (study.store.records.write_guard), so a worker whose claim was taken over never
overwrites or duplicates the record; at worst its training is wasted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from study.store.records import WriteError, clean_temporaries

log = logging.getLogger(__name__)

SUFFIX = ".claim"


@dataclass(frozen=True)
class ClaimSettings:
    """How often a claim's owner proves it is alive, and how long silence makes a claim stale."""

    heartbeat_s: float = 30.0
    stale_after_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s < self.stale_after_s:
            raise ValueError(f"claims need 0 < heartbeat_s < stale_after_s, got {self.heartbeat_s} and "
                             f"{self.stale_after_s}")


def claim_path(record: Path) -> Path:
    """Where the claim of the run whose record is `record` lives."""
    return Path(record).with_name(Path(record).name + SUFFIX)


def read_owner(path: Path) -> dict[str, Any] | None:
    """The owner written in a claim file, or None when the file is gone or unreadable."""
    try:
        owner = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(path: Path, owner: dict[str, Any] | None, settings: ClaimSettings, now: float | None = None) -> bool:
    """Whether a claim may be taken over: silent for too long, unreadable, or its local owner is dead."""
    try:
        age = (time.time() if now is None else now) - Path(path).stat().st_mtime
    except FileNotFoundError:
        return False  # gone already: not ours to take over, just try to claim again
    if age > settings.stale_after_s or owner is None:
        return True  # `owner is None`: link makes claims whole, so an unreadable one was damaged on disk
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        return not _pid_alive(owner["pid"])
    return False


class Claim:
    """A held claim: its heartbeat thread runs until `release`."""

    def __init__(self, path: Path, owner: dict[str, Any], settings: ClaimSettings) -> None:
        self.path, self.owner, self.settings = path, owner, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {path.name}", daemon=True)
        self._thread.start()

    @property
    def token(self) -> str:
        """The random token naming this owner."""
        return self.owner["token"]

    def held(self) -> bool:
        """Whether the claim file on disk is still this owner's."""
        current = read_owner(self.path)
        return current is not None and current.get("token") == self.token

    def owns(self, record: Path) -> bool:
        """Whether this claim still entitles its owner to write `record`."""
        return claim_path(record) == self.path and self.held()

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            if not self.held():
                log.warning("claim %s was taken over by another worker; its record will not be written", self.path)
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        self._thread.join()
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(FileNotFoundError):  # takers' lock, if the claim was ever taken over
                self.path.with_name(f".{self.path.name}.lock").unlink()


def _new_owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": secrets.token_hex(8),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _link_new(path: Path, owner: dict[str, Any]) -> bool:
    """Create the claim file holding `owner`, atomically; False when one exists."""
    # Not `*.tmp`: study.store.records.clean_temporaries removes those next to a record.
    tmp = path.with_name(f".{path.name}.{owner['token']}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(owner) + "\n")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise WriteError(f"cannot create claim {path}: {e.strerror or e}; free disk space or make the "
                         "folder writable, then rerun the same command (finished runs are kept)") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _take_over(path: Path, stale: dict[str, Any] | None, token: str, why: str = "taking over stale claim") -> bool:
    """Remove the stale claim `stale` from `path`, leaving any newer claim in place; True if it removed it."""
    # Takers serialise on a lock file, and each removes the claim only if it is still the one judged
    # stale: a fresh claim linked in meanwhile is never touched, so at most one owner ever results.
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise WriteError(f"cannot take over stale claim {path}: {e.strerror}; remove it by hand") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not path.exists():
            return False  # another taker was faster
        now = read_owner(path)
        if (now is None) != (stale is None) or (now is not None and now.get("token") != stale.get("token")):
            return False  # replaced by a newer claim since we looked
        who = f"{stale.get('host')} pid {stale.get('pid')}" if stale else "an unreadable owner"
        log.warning("%s %s (held by %s)", why, path, who)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    except OSError as e:
        raise WriteError(f"cannot take over stale claim {path}: {e.strerror}; remove it by hand") from None
    finally:
        os.close(fd)


def acquire(record: Path, settings: ClaimSettings, attempts: int = 5) -> Claim | None:
    """Claim the run whose record is `record`; None when a live owner holds it."""
    path = claim_path(record)
    owner = _new_owner()
    for _ in range(attempts):
        if _link_new(path, owner):
            return Claim(path, owner, settings)
        current = read_owner(path)
        if current is None and not path.exists():
            continue  # released, or moved aside by a taker, between our link and our look: try again
        if not is_stale(path, current, settings):
            if path.exists():
                return None
            continue  # released between our link and our look: try again
        _take_over(path, current, owner["token"])
    return None


def drop_dead(records: list[Path], pids: set[int]) -> list[Path]:
    """Remove the claims that processes `pids` of this host left when they died; returns their records.

    A parent whose worker was killed (SIGKILL, out of memory) cleans up after it at once, rather than
    leaving the claim for the next command to find stale.
    """
    host, dropped = socket.gethostname(), []
    for record in records:
        path = claim_path(record)
        owner = read_owner(path)
        if owner is None or owner.get("host") != host or owner.get("pid") not in pids or _pid_alive(owner["pid"]):
            continue
        # While its dead owner's claim is still there nobody else may write next to the record: the temporary
        # file a kill left half-written can go.
        clean_temporaries(Path(record))
        if _take_over(path, owner, "", why="removing the claim its dead worker left:"):
            dropped.append(Path(record))
            with contextlib.suppress(FileNotFoundError):
                path.with_name(f".{path.name}.lock").unlink()
    return dropped


@contextlib.contextmanager
def claimed(record: Path, settings: ClaimSettings) -> Iterator[Claim | None]:
    """`acquire` as a context: yields the claim (or None when held elsewhere) and releases it after, removing
    first any temporary file a write cut short by a stop signal left next to the record or its checkpoint."""
    claim = acquire(record, settings)
    try:
        yield claim
    finally:
        if claim is not None:
            if claim.held():
                clean_temporaries(Path(record))
            claim.release()
