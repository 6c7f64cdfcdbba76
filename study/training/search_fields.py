"""The field types of a search record, checked before a report reads one.

A record's checksum says the file is as written, not that it was written by study.search: a hand-made or
edited record with a string where a number belongs must be named and left out by `launch.status` and
`analysis.search`, not turn into a traceback. `problem(rec)` says what is wrong in a few words, or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]


def number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def count(value: Any) -> bool:
    """A non-negative int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def fraction(value: Any) -> bool:
    """A number from 0 to 1."""
    return number(value) and 0 <= value <= 1


def text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and bool(value)


def optional(check: Check) -> Check:
    """`check`, or None."""
    return lambda value: value is None or check(value)


def truth(value: Any) -> bool:
    """None, or a dict of numbers (the benchmark's index and accuracies of a cell)."""
    return value is None or (isinstance(value, dict) and all(number(v) for v in value.values()))


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _alpha(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(rows, list) and all(isinstance(r, list) and all(number(x) for x in r) for r in rows)
        for rows in value.values())


def _layout(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, list) and len(v) == 2 and _strings(v[0]) and _strings(v[1]) for v in value.values())


EVERY = {"status": text, "seed": count, "method": text, "objective": text, "command": optional(_strings)}
COMPLETE = {
    "arch": text, "cell_id": text, "space": text, "dataset": text, "budget": text, "identity": text,
    "epochs": lambda v: count(v) and v > 0, "truth": truth, "supernet_acc": fraction,
    "cpu_s": lambda v: number(v) and v >= 0, "wall_s": lambda v: number(v) and v >= 0,
    "cell_epoch_cpu_s": optional(lambda v: number(v) and v > 0), "cell_params": optional(number),
    "net": lambda v: isinstance(v, dict), "config": optional(lambda v: isinstance(v, dict)),
    "alpha": _alpha, "alpha_layout": _layout, "history": lambda v: isinstance(v, list) and bool(v),
}
EPOCH = {"epoch": count, "cell": text, "truth": truth, "supernet_acc": fraction, "weight_loss": number,
         "arch_loss": optional(number)}


def _wrong(rec: dict, fields: dict[str, Check], where: str = "") -> str | None:
    for key, check in fields.items():
        if not check(rec.get(key)):
            shown = "missing" if key not in rec else repr(rec[key])[:40]
            return f"{where}{key} {shown} is not what study.search writes"
    return None


def problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with a search record's fields (every record: status, seed, command; a complete one: the
    cell found, its truth, times and history), or None."""
    wrong = _wrong(rec, EVERY)
    if wrong or rec["status"] != "complete":
        return wrong
    wrong = _wrong(rec, COMPLETE)
    for k, entry in enumerate(rec["history"] if wrong is None else []):
        wrong = (_wrong(entry, EPOCH, f"history[{k}].") if isinstance(entry, dict)
                 else f"history[{k}] is not an object")
        if wrong:
            break
    return wrong
