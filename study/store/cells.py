"""The sample on disk: `cells.jsonl` (one cell a line) and `study.json` (how it was drawn), read and checked.

A damaged file is a StudyError naming the file, the line and the `study.sample` command that rewrites it
(with this study's folder and size, so that pasting it never samples another study), instead of a
traceback from whichever reader met it first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from study.shell import command
from study.store.records import CELLS_FILE, STUDY_FILE, StudyError


def read_info(study_dir: Path) -> dict[str, Any]:
    """study.json as a dict ({} when there is none: older or hand-made studies); StudyError when damaged."""
    path = Path(study_dir) / STUDY_FILE
    try:
        info = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):  # no study.json, or study_dir a file (read_cells says so)
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        problem = e.strerror if isinstance(e, OSError) else "not JSON text"
    else:
        if isinstance(info, dict) and isinstance(info.get("sample", {}), dict):
            return info
        problem = "not an object with a 'sample' object"
    raise StudyError(f"{path} is damaged ({problem}); rewrite it with {resample_command(study_dir, sample={})}")


def _distinct_ids(study_dir: Path) -> int:
    """How many distinct cell ids the cells file holds, reading what can be read."""
    try:
        lines = (Path(study_dir) / CELLS_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    ids = set()
    for line in lines:
        try:
            ids.add(str(json.loads(line).get("id")))
        except (ValueError, AttributeError):
            continue
    return len(ids)


def resample_command(study_dir: Path, sample: dict[str, Any] | None = None) -> str:
    """`python -m study.sample ... force=true` that rewrites this study's sample, as far as it is known (from
    `sample`, else study.json's)."""
    if sample is None:
        try:
            sample = read_info(study_dir).get("sample") or {}
        except StudyError:
            sample = {}
    n = sample.get("n") or _distinct_ids(study_dir)
    words = [f"space={sample['space']}"] if isinstance(sample.get("space"), str) else []
    words += [f"cells={sample['cells']}"] if isinstance(sample.get("cells"), str) else []  # a named or listed sample
    words += [f"n={n}"] if isinstance(n, int) and n > 0 else []
    words += [f"seed={sample['seed']}"] if isinstance(sample.get("seed"), int) else []
    words += ["include_degenerate=true"] if sample.get("include_degenerate") is True else []
    known = "space=" in " ".join(words) and "seed=" in " ".join(words)
    cmd = command("study.sample", *words, "force=true", study_dir=study_dir)
    return f"`{cmd}` ({'' if known else 'with the space= and seed= you sampled with, '}plus the dataset=/budget= " \
        "you sampled for; runs are kept and still match by cell id)"


def space_words(study_dir: Path) -> list[str]:
    """`space=<name>` of the study's sample (from study.json) for a command that must match it, else []."""
    try:
        space = (read_info(study_dir).get("sample") or {}).get("space")
    except StudyError:
        return []
    return [f"space={space}"] if isinstance(space, str) else []


def read_cells(study_dir: Path) -> list[dict[str, Any]]:
    """The sampled cells, or StudyError telling the user to sample first or how to repair the file."""
    path = Path(study_dir) / CELLS_FILE
    if Path(study_dir).exists() and not Path(study_dir).is_dir():
        raise StudyError(f"study_dir {str(study_dir)!r} is a file; point study_dir at a folder")
    if not path.exists():
        raise StudyError(f"no sample in {study_dir}: run `{command('study.sample', study_dir=study_dir)}` first")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise StudyError(f"cannot read {path} ({reason}); re-sample with {resample_command(study_dir)}") from None
    cells: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cell = json.loads(line)
        except json.JSONDecodeError as e:
            problem = f"not valid JSON ({e.msg})"
        else:
            problem = _problem(cell, first)
        if problem:
            raise StudyError(f"{path}:{lineno}: {problem}; fix the line, or re-sample with "
                             f"{resample_command(study_dir)}")
        first[cell["id"]] = lineno
        cells.append(cell)
    if not cells:
        raise StudyError(f"{path} holds no cells; re-sample with {resample_command(study_dir)}")
    return cells


def _problem(cell: Any, first: dict[str, int]) -> str | None:
    """What is wrong with one parsed line of the cells file (None when nothing)."""
    if not isinstance(cell, dict) or not {"id", "arch"} <= cell.keys():
        return "a cell needs 'id' and 'arch'"
    for key in ("id", "arch"):
        if not isinstance(cell[key], str) or not cell[key]:
            return f"the cell's {key!r} must be a string, got {repr(cell[key])[:60]}"
    if cell["id"] in first:
        return f"cell {cell['id']} repeats line {first[cell['id']]} (delete one of the two)"
    return None
