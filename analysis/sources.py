"""Every ground truth `truth=` can name, for a study of a given space.

    truth=PATH.csv        a user's table keyed by arch (or paper_id, canonical, ...): analysis.truth
    truth=unnas:PATH      the UnNAS paper's released results (unnas_summaries.zip): analysis.unnas
    truth=nb101:PATH      NAS-Bench-101's own results (its .tfrecord, or the table converted from it):
                          analysis.nb101_truth; a path ending in .tfrecord needs no prefix
    (nothing)             the space's built-in truth, if any (NAS-Bench-201)
"""

from __future__ import annotations

from analysis import nb101_truth, unnas
from analysis.truth import Truth, for_study as builtin_or_csv

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
