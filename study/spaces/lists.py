"""Cells from a list: a file of cells the user names, or a list shipped with a space (`cells=unnas`).

Two file forms, told apart by their first cell line:
  * text: one cell per line in the space's string form (DARTS also takes its `Genotype(...)` repr); blank
    lines and lines starting with `#` are skipped;
  * JSON lines: one object per line with an `arch` string and any other columns, kept with the cell
    (an `id` is the cell's external name and becomes the `name` column, since `id` is the study's own).
Either may be gzipped (`.gz`). Every line is parsed and validated before anything is written; a cell
whose canonical key repeats an earlier line's is kept once and reported. A list shipped with a space
lives in `study/spaces/<space>/data/<name>.jsonl.gz` (or `.jsonl`, `.txt`), with its NOTICE.md beside it.

`<list>:<name>[+<name>...]` keeps only the named rows of a JSON-lines list, in the order named
(`cells=unnas-searched:UNNAS_IMAGENET_ROT`: one of the paper's searched genotypes, as its evaluation recipe
trains it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from study.spaces.base import Cell, Space, SpaceError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SUFFIXES = (".jsonl.gz", ".jsonl", ".txt.gz", ".txt")
_SHOWN = 3  # duplicates named in the warning
_LINE_SHOWN = 100  # characters of a bad line an error message shows


@dataclass(frozen=True)
class Listed:
    """One cell of a list: the parsed cell, the line it came from and the list's other columns."""

    cell: Cell
    line: int
    extra: dict[str, Any] = field(default_factory=dict)


def named_lists(space: str) -> dict[str, Path]:
    """The lists shipped with a space, by name (`unnas` -> study/spaces/<space>/data/unnas.jsonl.gz)."""
    found = {}
    for path in sorted((HERE / space / "data").glob("*")):
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        if suffix and not path.name.startswith("."):
            found[path.name[: -len(suffix)]] = path
    return found


def split_names(value: str) -> tuple[str, list[str]]:
    """`list:NAME+NAME` -> ("list", ["NAME", "NAME"]); a value without a selector names every row."""
    head, sep, tail = value.rpartition(":")
    if sep and head and tail and "/" not in tail and not Path(value).expanduser().exists():
        return head, [n for n in tail.split("+") if n]
    return value, []


def pick(listed: list[Listed], names: list[str], value: str) -> list[Listed]:
    """The rows of `listed` whose `name` (the list's `id`) is one of `names`, in the order named."""
    by_name = {entry.extra.get("name"): entry for entry in listed}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(str(k) for k in by_name if k is not None) or "none (the list has no id column)"
        raise SpaceError(f"cells={value}: no row named {', '.join(missing)}; named rows: {known}")
    return [by_name[n] for n in dict.fromkeys(names)]


def resolve(space: str, value: str) -> tuple[str, Path]:
    """What `cells=value` names: (the name or path as written, the file); a shipped list's name first."""
    shipped = named_lists(space)
    if value in shipped:
        return value, shipped[value]
    path = Path(value).expanduser()
    if path.is_file():
        return str(path.resolve()), path
    names = ", ".join(shipped) or "none"
    if path.is_dir():
        raise SpaceError(f"cells={value}: {value!r} is a folder; give a file of cells, one per line")
    if path.exists():  # a device (/dev/zero), a pipe or a socket: reading it may never end
        raise SpaceError(f"cells={value}: {value!r} is not a regular file (a device, pipe or socket); give a file "
                         "of cells, one per line")
    raise SpaceError(f"cells={value}: no such file, and no list of that name ships with space {space!r} "
                     f"(shipped: {names}); give a file with one cell per line or a shipped name")


def digest(path: Path) -> str:
    """SHA-256 of the list file's bytes: a changed list is a different sample."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _lines(path: Path) -> list[str]:
    """The file's lines as text (gunzipped when it ends in .gz)."""
    try:
        raw = Path(path).read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors save UTF-8, is not part of a cell
    except OSError as e:
        raise SpaceError(f"cannot read cells file {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as e:
        raise SpaceError(f"cells file {path} is not UTF-8 text ({type(e).__name__}); give one cell per line") from None
    if "\x00" in text:  # /proc/self/environ and other binary files: never echo a line of theirs
        raise SpaceError(f"cells file {path} is not a text file (it holds NUL bytes); give one cell per line")
    return text.splitlines()


def _shown(message: str, line: str) -> str:
    """A parse error's message with the offending line cut to its start: a line may be megabytes long."""
    if len(line) > _LINE_SHOWN:
        message = message.replace(line, line[:_LINE_SHOWN] + f"... ({len(line)} characters)")
    return message if len(message) <= 2 * _LINE_SHOWN else message[: 2 * _LINE_SHOWN] + "..."


def _row(text: str, json_lines: bool) -> tuple[str, dict[str, Any]]:
    """The arch string and other columns of one line."""
    if not json_lines:
        return text, {}
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpaceError(f"not a JSON object ({e.msg}); every line of a JSON-lines list is one object") from None
    if not isinstance(row, dict) or not isinstance(row.get("arch"), str):
        raise SpaceError('needs an "arch" string, e.g. {"arch": "...", "id": "my-cell-1"}')
    extra = {("name" if k == "id" else k): v for k, v in row.items() if k != "arch"}
    return row["arch"], extra


def read_list(space: Space, path: Path) -> list[Listed]:
    """Every cell of the list, validated; duplicates by canonical key kept once (first line wins).

    One SpaceError names the first bad line (and how many more there are); nothing is returned then.
    """
    content = [(k, t.strip()) for k, t in enumerate(_lines(path), start=1)]
    content = [(k, t) for k, t in content if t and not t.startswith("#")]
    if not content:
        raise SpaceError(f"cells file {path} holds no cell; write one cell per line")
    json_lines = content[0][1].startswith("{")
    listed: list[Listed] = []
    bad: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for number, text in content:
        arch = text
        try:
            arch, extra = _row(text, json_lines)
            cell = space.parse(arch)
        except SpaceError as e:
            bad.append((number, _shown(str(e), arch)))
            continue
        key = cell.canonical()
        if key in first:
            repeats.append((number, first[key]))
            continue
        first[key] = number
        listed.append(Listed(cell, number, extra))
    if bad:
        more = f" ({len(bad) - 1} more bad line(s) after it)" if len(bad) > 1 else ""
        line, message = bad[0]
        raise SpaceError(f"cells file {path} line {line}: {message}{more}; fix or remove the line")
    if repeats:
        shown = ", ".join(f"line {a} repeats line {b}" for a, b in repeats[:_SHOWN])
        log.warning("cells file %s: %d cell(s) repeat an earlier line's canonical cell and are kept once (%s%s)",
                    path, len(repeats), shown, ", ..." if len(repeats) > _SHOWN else "")
    return listed
