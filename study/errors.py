"""The exceptions the command line turns into a single line on stderr (and no traceback).

- UserError: bad input the user can fix; exit status 2.
- Failed: the command cannot go on for a reason that is not the input (a worker process died); exit status 1.
- Stopped: a stop signal (SIGTERM, SIGUSR2, SIGHUP, or Ctrl-C's SIGINT) reached the command; it is handled
  like Ctrl-C (a KeyboardInterrupt, so Hydra and the library's `except Exception` pass it on untouched) and
  the command exits with 128 + the signal's number.
"""

from __future__ import annotations

import signal


class UserError(ValueError):
    """Bad input the user can fix; its message names the problem and what to do about it."""


class Failed(RuntimeError):
    """The command cannot go on (not bad input); its message says what happened and what is kept."""


class Stopped(KeyboardInterrupt):
    """A stop signal reached the command: stop now, keep what is finished, say how to resume."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
