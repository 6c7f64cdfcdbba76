"""`python -m study.search -m method=darts,gdas objective=rotation,supervised seed=0,1,2`: architecture search
driven by an objective's loss.

Each Hydra job is one (method, objective, seeds): a differentiable search over the space's supernet
(study/training/search.py) whose loss is the objective's, with labels or without; the cell it derives is
judged after every epoch by the space's own truth where it has one (NAS-Bench-201), and every found cell
joins `<study_dir>/found/<space>/`, a study that `study.train` trains with labels. Rerunning the same
command skips finished searches and resumes interrupted ones from their last epoch. Layout and record
fields: docs/outputs.md; the method and its budgets: docs/search.md.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below (a second or more): Ctrl-C while they load is one line too
    # start() runs the importable copy of this module: jobs sent through submitit pickle the task by
    # reference, and functions of `__main__` cannot be found in the job's process.
    from study.commands.entry import start

    start("study.search")

import logging
from dataclasses import replace

from study.commands.argv import GPU_PRESETS, CommandLine, dry_run_here, note_one_job, seed_list
from study.commands.cli import hydra_entry
from study.commands.search_request import SearchRequest, check, parse
from study.commands.submit import TALLY, sweep_main
from study.training import devices
from study.training.jobs import run_jobs
from study.training.search_run import Searches
from study.training.searches import plan

log = logging.getLogger("study.search")


def task(req: SearchRequest) -> None:
    """Run every search of this job's seeds that has no complete record yet."""
    setup = req.setup
    # A job of several tasks (hydra/launcher=gpus or slurm tasks_per_node>1): each task takes its share of
    # the seeds, on its own GPU.
    slot = devices.current_slot()
    gpus = devices.gpu_count() if setup.device.startswith("cuda") else 0
    setup = replace(setup, device=devices.pinned_device(setup.device, slot, gpus))
    seeds = req.seeds[slot.rank::slot.tasks]
    todo, done = plan(req.study_dir, setup, seeds)
    label = f"search {setup.method}/{setup.objective}" + (f" task {slot.rank}/{slot.tasks}" if slot.tasks > 1 else "")
    if req.dry_run:
        print(f"{label} seed {','.join(map(str, seeds))}: runs {len(todo)} of {len(seeds)} searches ({done} complete, "
              f"skipped) of {setup.budget.epochs} epochs: " + (" ".join(f"seed {s.seed}" for s in todo) or "-"))
        return
    if done:
        log.info("%s: skipping %d of %d searches with a complete record", label, done, len(todo) + done)
    if not todo:
        log.info("%s: all %d searches are complete; nothing to do", label, done)
        return
    workers = min(req.workers, len(todo))
    log.info("%s: %d search(es) of %d epochs on %s (%s budget, %s supernet C=%d N=%d, %d worker(s) x %d thread(s) "
             "on %s)", label, len(todo), setup.budget.epochs, setup.dataset, setup.budget.name, setup.space,
             setup.shape.width, setup.shape.cells_per_stage, workers, setup.threads, setup.device)
    progress = run_jobs(todo, setup, workers, label, Searches)
    TALLY.add(progress, label, "search")
    log.info("%s: %d finished, %d failed; records in %s/searches, found cells in %s/found/%s", label,
             progress.done - progress.failed, progress.failed, req.study_dir, req.study_dir, setup.space)


def seeds_together(line: CommandLine) -> CommandLine:
    """`-m seed=0,1,2` as one job of three seeds (`seed=[0,1,2]`), run side by side by its workers (one per
    core, or one per GPU of a `gpus` job), unless SLURM gives each seed its own array task; a GPU preset
    implies device=cuda."""
    launcher = line.value("hydra/launcher")
    items = []
    for item in line.items:
        seeds = [] if isinstance(item, str) or item.key_or_group != "seed" else seed_list(item)
        together = line.multirun and seeds and launcher != "slurm"
        items.append("seed=[" + ",".join(seeds) + "]" if together else item)
        if together:
            note_one_job(seeds, "search", "with hydra/launcher=slurm each seed is an array task of its own")
    if launcher in GPU_PRESETS and line.override("device") is None:
        items.append("device=cuda")
    return line.with_items(dry_run_here(line, items))


def main() -> None:
    """`python -m study.search`: parse the command line once, expand its conveniences, run the Hydra app."""
    sweep_main("search", "search", hydra_entry("search", parse, check, task), lambda line, _: seeds_together(line))
