"""The UnNAS paper's released results as ground truth: `truth=unnas:PATH`.

The paper's per-architecture results (`unnas_summaries.zip`, linked from the facebookresearch/unnas
README) are laid out as summaries/{darts,nas_bench}/{cifar10,imagenet}/{cls,rot,col,jig}/<seed>/
sweep_summary.json. Each file's `job_summaries` holds one entry per trained cell with `min_test_top1`,
the lowest test top-1 error over epochs (a list over the sweep's checkpoints: its last entry is the
run's). A cell is known by `net.genotype` (normal, reduce, normal_concat, reduce_concat) for DARTS and by
its `job_id`, the paper's ID of the cell, for NAS-Bench-101. As the paper does (its figs/fig234.py
get_acc and load_summaries), a column reads the seed folders 1, 2, 3 of CIFAR-10 and 1 of ImageNet (every
seed folder of any other dataset), a cell counts for a column only when every one of them holds it, and
its accuracy is 100 - error averaged over all its entries (a cell listed twice in one file counts twice).
Accuracies are returned as fractions, like a study's. fig234.py compares cells common to every file:
`analysis.correlate` does the same with this truth (`Truth.common`).

Columns are named `unnas-<dataset>-<task>` (`unnas-cifar10-rot`, `unnas-imagenet-cls`). Rows are keyed by
the space's canonical cell key, so the truth joins any study that trained these cells, however they
were sampled; NAS-Bench-101 IDs are mapped to their cells through the shipped list of the paper's cells
(study/spaces/nb101/data/unnas.jsonl.gz). PATH is the zip, the folder it unpacks to, or its summaries/.
"""

from __future__ import annotations

import functools
import json
import logging
import zipfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from analysis.truth import Truth, TruthError
from study.spaces import SpaceError, get_space
from study.spaces.darts.cell import DartsCell
from study.spaces.lists import named_lists, read_list

log = logging.getLogger(__name__)

FOLDERS = {"darts": "darts", "nb101": "nas_bench"}  # our space name -> the summaries' folder
DATASETS = ("cifar10", "imagenet")
TASKS = ("cls", "rot", "col", "jig")  # the paper's order: supervised, rotation, colorization, jigsaw
SUMMARY = "sweep_summary.json"
_FIX = "give the unnas_summaries.zip of the unnas README, or the folder it unpacks to"
PAPER_SEEDS = {"cifar10": ("1", "2", "3"), "imagenet": ("1",)}  # the seed folders fig234.py reads


def column(dataset: str, task: str) -> str:
    """The truth column of one dataset and task, e.g. unnas-cifar10-rot."""
    return f"unnas-{dataset}-{task}"


def _root(path: Path) -> Any:
    """The folder (a Path, or a zipfile.Path inside the zip) that holds the spaces' folders."""
    if not path.exists():
        raise TruthError(f"unnas summaries {str(path)!r} do not exist; {_FIX}")
    if path.is_file():
        try:
            top = zipfile.Path(zipfile.ZipFile(path))
        except (zipfile.BadZipFile, OSError) as e:
            raise TruthError(f"unnas summaries {str(path)!r} is not a zip file ({e}); {_FIX}") from None
    else:
        top = path
    for candidate in (top / "summaries", top):
        if any((candidate / folder).is_dir() for folder in FOLDERS.values()):
            return candidate
    raise TruthError(f"{str(path)!r} holds no summaries/{{darts,nas_bench}} folder; {_FIX}")


def _children(folder: Any) -> list[Any]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name) if folder.is_dir() else []


def top1_error(value: Any) -> float:
    """A summary's `min_test_top1`: the last entry of a list, or the value itself; a percentage from 0 to 100.

    ValueError for anything else (a string, true, inf, -500, 10**400): the paper's numbers are never those.
    """
    last = value[-1] if isinstance(value, list) and value else value
    if isinstance(last, bool) or not isinstance(last, (int, float)) or not 0 <= last <= 100:  # NaN fails too
        raise ValueError(f"min_test_top1 {str(value)[:40]} is not an error percentage from 0 to 100")
    return float(last)


@functools.lru_cache(maxsize=2)
def paper_cells(space: str) -> dict[str, str]:
    """The paper's ID (as an int string, no leading zeros) -> canonical key, from the shipped list."""
    listed = read_list(get_space(space), named_lists(space)["unnas"])
    return {str(int(e.extra["paper_id"])): e.cell.canonical() for e in listed}


def paper_ids(space: str) -> dict[str, str]:
    """Canonical key -> the paper's ID as it names the config file (00004, 000907)."""
    listed = read_list(get_space(space), named_lists(space)["unnas"])
    return {e.cell.canonical(): str(e.extra["paper_id"]) for e in listed}


def unnas_keys(space: str) -> dict[str, str]:
    """Canonical key -> the key figs/fig234.py get_arch gives the cell: DARTS str(normal + reduce + concats)
    of the genotype as its config lists it, NAS-Bench-101 str(job_id). fig5.py draws from these, sorted."""
    listed = read_list(get_space(space), named_lists(space)["unnas"])
    if space == "nb101":
        return {e.cell.canonical(): str(int(e.extra["paper_id"])) for e in listed}
    concat = [2, 3, 4, 5]
    return {e.cell.canonical(): str([[op, src] for node in e.cell.normal for op, src in node]
                                    + [[op, src] for node in e.cell.reduce for op, src in node] + concat + concat)
            for e in listed}


def arch_key(job: dict, space: str) -> str | None:
    """The canonical key of a job summary's cell; None for a NAS-Bench-101 ID the paper's list lacks."""
    if space == "darts":
        genotype = job["net"]["genotype"]
        for part in ("normal_concat", "reduce_concat"):
            if list(genotype.get(part, [2, 3, 4, 5])) != [2, 3, 4, 5]:
                raise SpaceError(f"{part} {genotype[part]} is not [2, 3, 4, 5]")
        return DartsCell.from_lists(genotype["normal"], genotype["reduce"]).canonical()
    return paper_cells(space).get(str(int(job["job_id"])))


def read_seed(file: Any, space: str) -> dict[str, list[float]]:
    """Canonical key -> accuracies (fractions) of one sweep_summary.json, one per job of the cell."""
    try:
        jobs = json.loads(file.read_text())["job_summaries"]
        if not isinstance(jobs, list):
            raise TypeError(f"job_summaries is a {type(jobs).__name__}, not a list")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:  # RecursionError: JSON nested deep
        raise TruthError(f"{file} is not a sweep summary with job_summaries ({type(e).__name__}: "
                         f"{str(e)[:120]}); {_FIX}") from None
    out: dict[str, list[float]] = {}
    unknown = []
    for k, job in enumerate(jobs):
        try:
            key = arch_key(job, space)
            error = top1_error(job["min_test_top1"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError, SpaceError) as e:
            raise TruthError(f"{file}: job {k} has no readable cell or min_test_top1 ({type(e).__name__}: "
                             f"{str(e)[:160]}); {_FIX}") from None
        if key is None:
            unknown.append(job.get("job_id"))
            continue
        out.setdefault(key, []).append((100.0 - error) / 100.0)
    if unknown and not out:
        raise TruthError(f"{file}: none of its {len(unknown)} job_id(s) (e.g. {unknown[0]!r}) is an ID of the paper's "
                         f"{space} cells (study/spaces/{space}/data/unnas.jsonl.gz, 000907..423150); these are not "
                         "the paper's summaries, or their job_id is not the config's ID")
    if unknown:
        log.warning("%s: %d job(s) name no cell of the paper's list; left out", file, len(unknown))
    return out


def merge_seeds(seeds: Iterable[dict[str, list[float]]]) -> pd.Series:
    """The cells every seed holds, each the mean of all its entries over the seeds (fig234.py's np.mean of
    the appended values, so a cell listed twice in one file weighs twice)."""
    seeds = list(seeds)
    common = set.intersection(*(set(s) for s in seeds)) if seeds else set()
    return pd.Series({key: sum(v for s in seeds for v in s[key]) / sum(len(s[key]) for s in seeds)
                      for key in sorted(common)}, dtype=float)


def seed_files(dataset: Any, task: Any) -> list[Any]:
    """The sweep summaries of one column: the paper's seed folders for CIFAR-10 and ImageNet, else all."""
    wanted = PAPER_SEEDS.get(dataset.name)
    present = {seed.name: seed / SUMMARY for seed in _children(task) if (seed / SUMMARY).is_file()}
    if wanted is None:
        return list(present.values())
    missing = [s for s in wanted if s not in present]
    if missing and len(missing) < len(wanted):
        raise TruthError(f"{task}: seed folder(s) {', '.join(missing)} lack {SUMMARY}; the paper averages seeds "
                         f"{', '.join(wanted)} of {dataset.name}; {_FIX}")
    ignored = sorted(set(present) - set(wanted))
    if ignored and not missing:
        log.info("%s: seed folder(s) %s left out (the paper reads %s)", task, ", ".join(ignored), ", ".join(wanted))
    return [present[s] for s in wanted if s in present]


def read_summaries(path: str | Path, space: str) -> pd.DataFrame:
    """Every column the summaries hold for `space`: index canonical key, accuracy as a fraction."""
    path = Path(path).expanduser()
    stamp = path.stat().st_mtime_ns if path.exists() else None
    return _read_summaries(str(path), stamp, space).copy()  # a command checks, then reads: parse the files once


@functools.lru_cache(maxsize=4)
def _read_summaries(path: str, stamp: int | None, space: str) -> pd.DataFrame:
    if space not in FOLDERS:
        raise TruthError(f"the unnas summaries cover spaces {', '.join(FOLDERS)}, not {space!r}; "
                         "sample the paper's cells with study.sample space=darts cells=unnas (or space=nb101)")
    base = _root(Path(path)) / FOLDERS[space]
    columns = {}
    for dataset in _children(base):
        for task in _children(dataset):
            files = seed_files(dataset, task)
            if files:
                columns[column(dataset.name, task.name)] = merge_seeds(read_seed(f, space) for f in files)
    if not columns:
        raise TruthError(f"{path} holds no {FOLDERS[space]}/<dataset>/<task>/<seed>/{SUMMARY}; {_FIX}")
    order = [column(d, t) for d in DATASETS for t in TASKS]
    names = sorted(columns, key=lambda c: (order.index(c) if c in order else len(order), c))
    return pd.DataFrame({c: columns[c] for c in names}).rename_axis("canonical")


def read(path: str | Path, space: str | None) -> Truth:
    """`truth=unnas:PATH` for a study of `space` (darts or nb101)."""
    table = read_summaries(path, space or "")
    return Truth(f"UnNAS released results ({path}; 100 - min_test_top1, seeds averaged)", table, key="canonical",
                 common=True)
