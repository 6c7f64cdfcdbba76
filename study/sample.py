"""`python -m study.sample n=500`: draw distinct cells into `<study_dir>/cells.jsonl`.

`cells=PATH` (or the name of a list shipped with the space, `cells=unnas`) takes the cells from a list
instead of drawing them (study/spaces/lists.py); `n` then keeps the list's first n cells.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    # start() runs the importable copy of this module: jobs sent through submitit pickle the task by
    # reference, and functions of `__main__` cannot be found in the job's process.
    from study.commands.entry import start

    start("study.sample")

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig

from study.commands import settings
from study.commands.cli import hydra_entry
from study.errors import UserError
from study.files import locked
from study.store.cells import read_info
from study.store.records import CELLS_FILE, STUDY_FILE, StudyError, has_runs, room_to_write, write_atomic, \
    write_json_atomic
from study.spaces import Cell, NetShape, describe, get_space
from study.spaces.lists import Listed, digest, pick, read_list, resolve, split_names

log = logging.getLogger("study.sample")


@dataclass(frozen=True)
class SampleRequest:
    """A typed sample command."""

    study_dir: Path
    space: str
    n: int | None          # None: 500 for a draw, the whole list for cells=
    seed: int
    include_degenerate: bool
    force: bool
    shape: NetShape
    cells: str | None = None  # a list's path or shipped name; None draws at random


DEFAULT_N = 500
SAMPLE_LOCK = ".sample.lock"  # held while a sample is checked against the folder and written


def parse(cfg: DictConfig) -> SampleRequest:
    """Typed values from the config; UserError for anything out of range."""
    shape = settings.net_shape(cfg)  # the width and depth study.train resolves for the same space and budget
    cells = cfg.get("cells")
    if cells is not None and (not isinstance(cells, str) or not cells.strip()):
        raise UserError(f"cells must be a file of cells or a shipped list's name, got {cells!r}; e.g. cells=unnas")
    return SampleRequest(
        study_dir=settings.study_dir(cfg), space=settings.space_name(cfg),
        n=None if cfg.get("n") is None else settings.positive_int(cfg, "n", "n"),
        seed=settings.integer(cfg, "seed", "seed"),
        include_degenerate=settings.boolean(cfg, "include_degenerate"),
        force=settings.boolean(cfg, "force"), shape=shape, cells=cells,
    )


def chosen(req: SampleRequest) -> tuple[list[Cell], list[dict], dict]:
    """The cells of the request, their list columns (empty for a draw) and the sample's metadata.

    A draw's metadata is what it always was; a list's names the list and the SHA-256 of its bytes, so a
    changed list is a different sample.
    """
    space = get_space(req.space)
    if req.cells is None:
        n = DEFAULT_N if req.n is None else req.n
        meta = {"space": req.space, "n": n, "seed": req.seed, "include_degenerate": req.include_degenerate,
                "net": asdict(req.shape)}
        return space.sample(n, req.seed, req.include_degenerate), [{} for _ in range(n)], meta
    value, names = split_names(req.cells)
    name, path = resolve(req.space, value)
    listed: list[Listed] = read_list(space, path)
    if names:  # `list:NAME+NAME`: the named rows only, a sample of its own (the selector is in its name)
        listed, name = pick(listed, names, req.cells), f"{name}:{'+'.join(names)}"
    if req.n is not None and req.n > len(listed):
        raise UserError(f"n={req.n} is more than the {len(listed)} distinct cells of cells={req.cells}; "
                        f"use n<={len(listed)} or leave n out for all of them")
    listed = listed[: req.n] if req.n is not None else listed
    degenerate = sum(entry.cell.is_degenerate() for entry in listed)
    if degenerate:
        log.warning("%d listed cell(s) are degenerate (their output ignores the input); kept as listed", degenerate)
    meta = {"space": req.space, "cells": name, "cells_sha256": digest(path), "n": len(listed),
            "net": asdict(req.shape)}
    return [entry.cell for entry in listed], [entry.extra for entry in listed], meta


def check(req: SampleRequest) -> None:
    """Refuse a sample request before anything is written."""
    logging.disable(logging.WARNING)  # a list's repeats and degenerate cells are reported once, by the task
    try:
        _, _, meta = chosen(req)  # n too large -> SpaceError naming the limit; a bad list line -> its number
    finally:
        logging.disable(logging.NOTSET)
    if req.study_dir.exists() and not req.study_dir.is_dir():
        raise UserError(f"study_dir {req.study_dir} is a file; point study_dir at a folder")
    # Before Hydra, whose first act is a log folder inside study_dir.
    room_to_write(req.study_dir, "study_dir", "choose a writable study_dir= (the sample and its logs go there)")
    if not req.study_dir.is_dir():
        return  # nothing to compare with; a sample written meanwhile is met under the lock in `task`
    # cells.jsonl and study.json are written as a pair under the lock: read them under it too, or a sample
    # being written beside this one shows its cells without their study.json ("not drawn by study.sample").
    with locked(req.study_dir / SAMPLE_LOCK):
        refuse_another(req, meta)


def refuse_another(req: SampleRequest, meta: dict) -> None:
    """UserError when study_dir holds a sample other than `meta` that force=true is needed to replace."""
    old = _read_meta(req.study_dir)
    cells_file = req.study_dir / CELLS_FILE
    if old == meta or req.force or not (cells_file.exists() or has_runs(req.study_dir)):
        return
    # Never replace cells that study.sample did not draw with these arguments: a hand-written list, or
    # another sample (with runs or not), is the user's work. An unreadable study.json counts as different.
    differ = ", ".join(k for k in {**old, **meta} if old.get(k) != meta.get(k)) if old else "study.json unreadable"
    if not cells_file.exists() or old is not None or has_runs(req.study_dir):
        # Runs in training (claims, checkpoints, no record yet) count too: their records would fall out of the sample.
        runs = " with runs trained or in training" if has_runs(req.study_dir) else ""
        raise UserError(
            f"{req.study_dir} already has a different sample ({differ}){runs}; add force=true to replace it "
            "(runs are kept and still match by cell id) or choose another study_dir"
        )
    raise UserError(
        f"{cells_file} was not drawn by study.sample (study.json is missing or unreadable), so it may be a "
        f"hand-written list; add force=true to replace it, or sample it with cells={cells_file} study_dir=<another>"
    )


def _read_meta(study_dir: Path) -> dict | None:
    """How the current sample was drawn; None when there is no study.json or it is damaged."""
    try:
        return read_info(study_dir).get("sample")
    except StudyError:
        return None


def _current(path: Path) -> str | None:
    """The cells file's text, or None when it cannot be read as text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def task(req: SampleRequest) -> None:
    """Draw the sample and write the cells file and study metadata atomically."""
    space = get_space(req.space)
    cells, extras, meta = chosen(req)
    rows = [_row(describe(space, c, req.shape), extra) for c, extra in zip(cells, extras)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    # The check and the write are one step: two samples started together both passed `check` on an empty
    # folder; under the lock, the second sees the first's sample and is refused (or finds it already there).
    with locked(req.study_dir / SAMPLE_LOCK):
        refuse_another(req, meta)
        if not _write(req, meta, text):
            return
    params = sorted(r["params"] for r in rows)
    how = f"from cells={req.cells}" if req.cells is not None else f"(seed {req.seed})"
    log.info(
        "sampled %d distinct %s cells %s into %s; params %d..%d (median %d)",
        len(rows), req.space, how, req.study_dir / CELLS_FILE, params[0], params[-1], params[len(params) // 2],
    )


def _write(req: SampleRequest, meta: dict, text: str) -> bool:
    """Write the cells file, then study.json; False (nothing written) when the folder holds this very sample."""
    path = req.study_dir / CELLS_FILE
    if _read_meta(req.study_dir) == meta and path.exists():
        # study.json alone is not trusted: the cells file may have been damaged or edited since.
        if _current(path) == text:
            log.info("%s already holds this sample (%d cells); nothing to do", req.study_dir, text.count("\n"))
            return False
        if not req.force:
            raise UserError(f"{path} is damaged or edited: it does not hold the sample study.json describes; "
                            "add force=true to rewrite it (run records are kept and still match by cell id)")
        log.warning("%s is damaged or edited; rewriting it from study.json's sample (runs are kept)", path)
    # Cells first: a crash in between leaves old metadata, so the next call simply redraws.
    write_atomic(path, text)
    write_json_atomic(req.study_dir / STUDY_FILE, {"sample": meta})
    return True


def _row(described: dict, extra: dict) -> dict:
    """A cells.jsonl row: the computed columns, then the list's own (which never override them)."""
    ignored = sorted(k for k in extra if k in described)
    if ignored:
        log.debug("list columns %s are recomputed, not copied", ", ".join(ignored))
    return {**described, **{k: v for k, v in extra.items() if k not in described}}


main = hydra_entry("sample", parse, check, task)
