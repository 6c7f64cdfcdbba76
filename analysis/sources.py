"""Every ground truth `truth=` can name, for a study of a given space.

    truth=PATH.csv        a user's table keyed by arch (or paper_id, canonical, ...): analysis.truth
    truth=unnas:PATH      the UnNAS paper's released results (unnas_summaries.zip): analysis.unnas
    truth=nb101:PATH      NAS-Bench-101's own results (its .tfrecord, or the table converted from it):
                          analysis.nb101_truth; a path ending in .tfrecord needs no prefix
    (nothing)             the space's built-in truth, if any (NAS-Bench-201)
"""

from __future__ import annotations

from pathlib import Path

from analysis import nb101_truth, unnas
from analysis.truth import Truth, TruthError, for_study as builtin_or_csv

PREFIXES = {"unnas": unnas.read, "nb101": nb101_truth.read}


def for_study(space: str | None, value: str | None) -> Truth | None:
    """The truth `value` names for a study of `space` (None when there is none)."""
    if value:
        kind, sep, rest = value.partition(":")
        if sep and kind in PREFIXES:
            return PREFIXES[kind](rest, space)
        if value.endswith(".tfrecord"):
            return nb101_truth.read(value, space)
    return builtin_or_csv(space, value)


def check_exists(value: str) -> None:
    """Refuse a `truth=` whose file is missing before any work (reading a large source waits for the task)."""
    kind, sep, rest = value.partition(":")
    path = Path(rest if sep and kind in PREFIXES else value).expanduser()
    if not path.exists():
        raise TruthError(f"truth={value}: {str(path)!r} does not exist; give the file or folder it names")
