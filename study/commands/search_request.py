"""The search command as a typed request, and what it checks before anything runs.

Read once from the config like the train request (study/commands/request.py): the space, dataset,
objective, search budget and method groups, the seeds, the device. Refused in one line: a training-free
objective (nothing to descend), a space without a supernet, an unknown method or method option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from study.commands import settings
from study.data import DATASETS
from study.commands.groups import accepts_for
from study.commands.request import job_setup, stream_threads
from study.errors import UserError
from study.store.records import writable
from study.training import devices, loggers
from study.training.searches import SearchSetup
from study.objectives.base import objective_class
from study.training.methods import create_method
from study.commands.preflight import check_dataset, check_objective
from study.objectives import list_objectives
from study.spaces import searchable


@dataclass(frozen=True)
class SearchRequest:
    """A typed search command: what to search (setup, seeds) and how many searches run side by side."""

    study_dir: Path
    setup: SearchSetup
    seeds: list[int]
    workers: int
    dry_run: bool = False  # print which searches would run; run nothing


def _job_overrides() -> tuple[str, ...]:
    """This Hydra job's overrides (what `python -m study.search ...` needs to resume it), or () outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ()
    return tuple(HydraConfig.get().overrides.task)


def parse(cfg: DictConfig) -> SearchRequest:
    """The request of a composed search config; UserError for anything invalid."""

    common = job_setup(cfg, "search_budget")
    method = OmegaConf.to_container(cfg.method, resolve=True)
    method_name = method.pop("name")
    method.pop("paper_epochs", None)  # a fact the paper budget reads, not an option of the method
    create_method(method_name, **method)  # unknown method or option -> one line
    seeds = settings.seeds(cfg)
    cores = devices.cpu_count()
    streams = DATASETS.get(cfg.dataset.name).streams
    # One search per process: on a CPU, one single-threaded search per core (as trainings); on a GPU, or
    # streaming from disk, one, whose loader workers decode on the cores its step leaves.
    workers = settings.auto_int(cfg, "workers", min(len(seeds), cores) if common["device"] == "cpu" and not streams else 1)
    threads = stream_threads(cfg, common["dataset_options"], cores, workers) if streams \
        else settings.auto_int(cfg, "threads", devices.auto_threads(cores, min(workers, len(seeds))))
    setup = SearchSetup(**common, threads=threads, method=method_name, method_options=method,
                        command=_job_overrides())
    return SearchRequest(study_dir=settings.study_dir(cfg), setup=setup, seeds=seeds, workers=workers,
                         dry_run=settings.boolean(cfg, "dry_run"))


@accepts_for("search")
def accepts(group: str, choice: str) -> bool:
    """Whether `check` takes `group=choice` on its own: trained objectives, spaces with a supernet (what --help
    lists; the config files are named as the registry entries they choose)."""
    if group == "objective":
        return objective_class(choice).trains
    if group == "space":
        try:
            searchable(choice)
        except UserError:
            return False
    return True


def check(req: SearchRequest) -> None:
    """Refuse a search before anything runs: a read-only study, a training-free objective, a space without a
    supernet, a bad dataset or objective option, a logger whose package is missing."""
    import json

    setup = req.setup
    if not writable(req.study_dir):
        raise UserError(f"study_dir {req.study_dir} is read-only: a search writes its record and logs there; "
                        "choose a writable study_dir")
    if not objective_class(setup.objective).trains:
        trained = [o for o in list_objectives() if objective_class(o).trains]
        raise UserError(f"objective {setup.objective!r} is training-free: a search descends an objective's loss; "
                        f"choose one of {', '.join(trained)} (objective=rotation)")
    searchable(setup.space)  # no supernet -> one line naming the spaces that have one
    loggers.check(setup.logger)
    check_dataset(setup.dataset, json.dumps(setup.dataset_options, sort_keys=True), setup.shape.n_classes)
    check_objective(setup)  # the objective's options and colour needs, on a one-image stand-in
