"""`python -m launch.status [study_dir=PATH]`: a study's progress, its failures, and how to finish it.

For every (objective, run identity, seed) folder under `<study_dir>/runs`: cells done, failed, started
(a checkpoint but no record yet: running now, or interrupted and waiting to resume) and pending; each
failure's reason; and the `study.train` command that trains what is missing. A run that raised is
recorded `failed` even when SLURM reports its job COMPLETED, so it shows here. Then the study's searches
(`<study_dir>/searches`, study.search): per method, objective and budget, the seeds done, failed and
started (with the epoch reached), and the command that resumes the unfinished ones. Reads only.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    from study.commands.entry import start

    start("launch.status")

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import rerun
from study.training.checkpoint import SUFFIX, peek
from study.commands.argv import CommandLine
from study.commands.cli import CONF_DIR, fail
from study.errors import UserError
from study.shell import command
from study.store.cells import read_cells, read_info, space_words
from study.store.records import RUNS_DIR, StudyError, complete_at, is_complete, read_record
from study.training import search_fields
from study.training.searches import SEARCHES_DIR, truth_note


@dataclass
class Group:
    """The runs of one objective, run identity and seed."""

    objective: str
    tag: str  # <dataset>-<budget>-<identity>
    seed: int
    done: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # cell id -> reason
    started: dict[str, int | None] = field(default_factory=dict)  # cell id -> epochs done
    config: dict[str, Any] | None = None
    epochs: int | None = None

    def missing(self, ids: list[str]) -> list[str]:
        """Cells without a complete record, in cells-file order."""
        return [c for c in ids if c not in self.done]


def scan(study_dir: Path, ids: list[str]) -> list[Group]:
    """Every group found under `<study_dir>/runs`, counting only the sampled cells."""
    known = set(ids)
    groups = []
    for folder in sorted((Path(study_dir) / RUNS_DIR).glob("*/*/seed*")):
        if not folder.is_dir() or not folder.name[4:].isdigit():
            continue
        g = Group(folder.parent.parent.name, folder.parent.name, int(folder.name[4:]))
        for path in sorted(folder.glob("*.json")):
            rec = read_record(path)
            if rec is None or not isinstance(rec["cell_id"], str) or rec["cell_id"] not in known:
                continue
            g.config = g.config or rec.get("config")
            if is_complete(rec):
                g.done.add(rec["cell_id"])
                g.epochs = g.epochs or rec.get("epochs")
            else:
                g.failed[rec["cell_id"]] = str(rec.get("reason") or "no reason recorded")
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path.stem in known and path.stem not in g.done and path.stem not in g.failed:
                g.started[path.stem], config = peek(path)
                g.config = g.config or config
        groups.append(g)
    return groups


def report(study_dir: Path) -> str:
    """The progress report of a study, as printed by `python -m launch.status`."""
    read_info(study_dir)  # a damaged study.json stops every command (docs/outputs.md): StudyError naming the fix
    searches = search_report(study_dir)
    try:
        runs = run_report(study_dir)
    except StudyError:
        if not searches:
            raise
        return "\n".join([f"study {study_dir}: no sample (searches only)", *searches])
    return "\n".join([runs, *searches])


def run_report(study_dir: Path) -> str:
    """The runs part of the report (StudyError when the study has no sample)."""
    cells = read_cells(study_dir)
    ids = [c["id"] for c in cells]
    row_of = {c: i for i, c in enumerate(ids)}
    groups = scan(study_dir, ids)
    lines = [f"study {study_dir}: {len(ids)} cells"]
    if not groups:
        start = command("study.train", "-m", *space_words(study_dir), "objective=rotation,supervised",
                        study_dir=study_dir)
        lines.append(f"no runs yet; start them with `{start}` (add the budget=/dataset= you sampled for)")
        return "\n".join(lines)
    header = ("objective", "seed", "runs", "done", "failed", "started", "pending")
    rows = []
    for g in groups:
        pending = len(ids) - len(g.done) - len(g.failed) - len(g.started)
        rows.append((g.objective, str(g.seed), g.tag, str(len(g.done)), str(len(g.failed)), str(len(g.started)),
                     str(pending)))
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(v.ljust(w) if k < 3 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths))))
    total = len(ids) * len(groups)
    done = sum(len(g.done) for g in groups)
    lines.append(f"total: {done} of {total} runs done ({100 * done / total:.0f}%)")

    started = [(g, c, e) for g in groups for c, e in g.started.items()]
    if started:
        lines.append("started (checkpointed; running now or waiting to resume):")
        lines += [f"  {g.objective} seed {g.seed} cell {c} (#{row_of[c]}): epoch {'?' if e is None else e}"
                  f"{'' if g.epochs is None else f' of {g.epochs}'}" for g, c, e in started]
    failures = [(g, c, r) for g in groups for c, r in g.failed.items()]
    if failures:
        lines.append("failed:")
        lines += [f"  {g.objective} seed {g.seed} cell {c} (#{row_of[c]}): {r}" for g, c, r in failures]
    lines += _commands(groups, ids, study_dir)
    return "\n".join(lines)


def _commands(groups: list[Group], ids: list[str], study_dir: Path) -> list[str]:
    merged: dict[tuple, list[int]] = defaultdict(list)  # same command and missing cells: one line, seeds joined
    lost = []
    for g in groups:
        missing = g.missing(ids)
        if not missing:
            continue
        overrides = rerun.overrides_for({**g.config, "study_dir": str(study_dir)}) if g.config else None
        if overrides is None:
            lost.append(f"  {g.objective} seed {g.seed} ({g.tag}): no record to rebuild the command from; "
                        "re-issue the command you started it with (it resumes)")
            continue
        merged[(tuple(overrides), tuple(missing))].append(g.seed)
    if not merged and not lost:
        return ["everything is done"]
    lines = ["to train what is missing (add your launcher, e.g. hydra/launcher=slurm shards=8):"]
    for (overrides, missing), seeds in merged.items():
        lines.append("  " + rerun.command(list(overrides), sorted(seeds), list(missing), len(missing) == len(ids)))
    return lines + lost


def search_report(study_dir: Path) -> list[str]:
    """Lines on the study's searches: per method, objective and budget the seeds done, failed and started."""
    import shlex

    folders = sorted((Path(study_dir) / SEARCHES_DIR).glob("*/*/*"))
    if not folders:
        return []
    lines, resume = ["searches (study.search):"], []
    for folder in folders:
        method, objective = folder.parent.parent.name, folder.parent.name
        done, failed, started = [], [], []
        for path in sorted(folder.glob("seed*.json")):
            rec = read_record(path)
            if rec is None:
                continue
            wrong = search_fields.problem(rec)
            if wrong:  # a hand-made or edited record: named, never a traceback
                failed.append(f"{path.name}: {wrong}; run this search again")
                continue
            if is_complete(rec):
                note = truth_note(rec.get("truth"), rec.get("space"))
                done.append(f"seed {rec['seed']}: {rec['arch']}" + (f" ({note})" if note else ""))
            else:
                failed.append(f"seed {rec['seed']}: {rec.get('reason')}")
                resume.append(rec.get("command") or [])
        for path in sorted(folder.glob(f"seed*{SUFFIX}")):
            if complete_at(path.with_suffix(".json")):
                continue  # finished between its last checkpoint and the checkpoint's removal
            epoch, total, command = _peek_search(path)
            started.append(f"{path.stem}: epoch {'?' if epoch is None else epoch} of {total or '?'}")
            resume.append(command or [])
        lines.append(f"  {method}/{objective} ({folder.name}): {len(done)} done, {len(failed)} failed, "
                     f"{len(started)} started")
        lines += [f"    {item}" for item in done + [f"FAILED {f}" for f in failed] + [f"started {s}" for s in started]]
    commands = sorted({shlex.join(["python", "-m", "study.search", *c]) for c in resume if c})
    if commands:
        lines.append("to finish the searches (each resumes from its last epoch):")
        lines += [f"  {c}" for c in commands]
    return lines


def _peek_search(path: Path) -> tuple[int | None, int | None, list[str] | None]:
    """Epochs done, epochs planned and the resuming overrides according to a search's checkpoint."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        epochs = ((saved.get("config") or {}).get("search_budget") or {}).get("epochs")
        return int(saved["epoch"]), epochs, (saved.get("extra") or {}).get("command")
    except Exception:  # a status report must not fail on a checkpoint being replaced right now
        return None, None, None


def main(argv: list[str] | None = None) -> None:
    """Print the report for `study_dir=PATH` (default: the study_dir of conf/common.yaml)."""
    from omegaconf import OmegaConf

    args = sys.argv[1:] if argv is None else argv
    study_dir = Path(str(OmegaConf.load(CONF_DIR / "common.yaml").study_dir))
    usage = "usage: python -m launch.status [study_dir=PATH]"
    if any(a in ("-h", "--help") for a in args):
        print(usage + "\n" + (__doc__ or "").split("\n\n", 1)[-1].strip())
        return
    try:  # the same grammar as the other commands: a path with spaces is quoted the same way everywhere
        line = CommandLine.parse(args)
    except UserError as e:
        fail(str(e))
    for item in line.items:
        key = item if isinstance(item, str) else item.key_or_group
        value = None if isinstance(item, str) or item.is_delete() else str(item.value())
        if key != "study_dir" or item.is_sweep_override() or not value:
            fail(f"unknown argument {item if isinstance(item, str) else item.input_line!r}; {usage}")
        study_dir = Path(value).expanduser()
    try:
        print(report(study_dir))
    except UserError as e:
        fail(str(e))
