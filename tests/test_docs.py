"""Documentation that runs: every `python -m ...` command of README.md and docs/*.md, run as written at tiny cost.

The commands run in the order a reader meets them (README.md, then docs/ page by page), in one scratch
folder (relative study folders land there), so sample, train and analysis commands build on each other as
they would for a reader, and a command met again finds its runs done (as a reader's rerun would). A new command in the docs is picked up without editing this file. The one shrinking rule:

- `study.sample`: `n=` at most 3 (added when absent), and no more than a named list holds;
- `study.train`, `study.search`: the budget replaced by `budget=tiny` / `search_budget=tiny` (added last; the
  `epochs=` and `warmup_epochs=` of the replaced budget dropped), one worker process (`workers=1`: the pool is tested on its own,
  tests/test_jobs.py); the recipe's other choices, `-m`, every sweep and its values stay as written; a
  dataset read from files reads a tiny fixture of its format (`data_root=`, all its images:
  `dataset.train_subset=0 dataset.test_subset=0`, its class count; ImageNet's format at 64 px on a network
  of width 4, `dataset.image_size=64 dataset.resize=72 budget.width=4`, as its recipes fix the paper's width; a streamed
  search at 32 px, `dataset.image_size=32 dataset.resize=36`);
- a command sent to SLURM (`hydra/launcher=slurm`) gets `dry_run=true`: it prints its plan, submits nothing;
- placeholders name fixtures: `/data/imagenet`, `PATH`, `DIR` a tiny image folder, `unnas_summaries.zip` (any
  folder) a zip in the paper's summaries layout, `nasbench_only108.tfrecord` a tfrecord in NAS-Bench-101's format,
  `/path/to/my_truth.csv` a truth CSV of the page's study, `<study_dir>` the default study folder;
- absolute paths under /tmp move into the scratch folder.

A command passes when it exits 0, or, where it needs what cannot be had here (listed in REFUSALS with
why), when it refuses in one line naming it, with no traceback. Synopses (`[key=...]`, `...`) are not
commands, nor are a table's cells or what follows a `$ ` prompt in a block (its output). Scripts under benchmarks/ are checked by `test_documented_benchmark_flags_exist`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Commands that may refuse here, with the words their one line must hold: what they need that CI cannot have.
REFUSALS = {
    "compare=[studies/imagenet-darts]": "cifar10-darts",  # a CIFAR-10 study the page does not build
    "compare=[studies/cifar10]": "studies/imagenet",  # an ImageNet study (hours of GPU) the page does not build
    "study_dir=studies/search-paper": "no finished search",  # its searches went to SLURM (a dry run here)
    "study_dir=studies/search-darts": "studies/search-darts",  # the same: nothing was searched or found
    "study_dir=studies/paper-nb101": "paper-nb101",  # the paper's NB-101 study, trained on a cluster
}
NOT_COMMANDS = ("python -m venv",)  # the install line: `make` and CI run it


def _joined(lines: list[str], i: int) -> tuple[str, int]:
    cmd = lines[i].strip().removeprefix("$ ")
    while cmd.endswith("\\") and i + 1 < len(lines):
        i += 1
        cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
    return cmd, i


def commands(page: Path) -> list[str]:
    """Every `python -m` command of a page, in order: code lines (indented or fenced) and inline code."""
    lines, found, fenced, transcript = page.read_text().split("\n"), [], False, False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            fenced = not fenced
        code = fenced or line.startswith("    ")
        transcript = code and (transcript or line.strip().startswith("$ "))  # after a prompt: its output
        if code and line.strip().removeprefix("$ ").startswith("python -m ") and \
                (line.strip().startswith("$ ") or not transcript):
            cmd, i = _joined(lines, i)
            found.append(cmd)
        elif not code and not line.startswith("|"):  # a table names commands, it does not run them
            found += re.findall(r"`(python -m [^`]+)`", line)
        i += 1
    cleaned = [re.sub(r"\s+#.*$", "", c).strip() for c in found]
    return [c for c in cleaned if not c.startswith(NOT_COMMANDS) and "..." not in c and not re.search(r"\[\w+=", c)
            and "|" not in c]


def _fixtures(scratch: Path) -> dict[str, Path]:
    from tests.image_fixtures import write_jpeg_tree, write_tiny_cifar, write_tiny_folder
    from tests.unnas_fixtures import write_summaries, zip_folder

    data = scratch / "_data"
    write_tiny_cifar(data / "cifar")
    write_tiny_folder(data / "folder")
    write_jpeg_tree(data / "imagenet", truncated=False)
    write_jpeg_tree(data / "imagestream", test_split="test", truncated=False)  # its default test folder
    summaries = data / "summaries"
    for space in ("darts", "nb101"):
        write_summaries(summaries, space, n=8)
    zip_folder(summaries, scratch / "unnas_summaries.zip")
    _write_tfrecord(scratch / "nasbench_only108.tfrecord")
    return {"cifar10": data / "cifar" / "cifar-10-batches-py", "imagefolder": data / "folder",
            "imagestream": data / "imagestream", "imagenet": data / "imagenet"}


def _write_tfrecord(path: Path) -> None:
    from tests.unnas_fixtures import nasbench_row, paper_cells, tfrecord

    cells = [cell for _, cell in paper_cells("nb101", 6)]
    rows = [nasbench_row(cell.canonical(), 108, cell, [(0.0, 0.1, 0.1), (108.0, 0.9, 0.88 + k / 100)], 1000 + k)
            for k, cell in enumerate(cells) for _ in range(3)]
    path.write_bytes(tfrecord(rows))


def _dataset(module: str, args: list[str]) -> tuple[str, dict]:
    """The dataset a command's config composes to, and its options (cheap: Hydra's compose, no run)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from study.commands.cli import CONF_DIR

    name = module.split(".")[-1]
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    first = [re.sub(r"^([^=]+)=([^,\[]+),.*$", r"\1=\2", o) for o in overrides]  # a sweep's first value
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(name, overrides=[o for o in first if not o.startswith(("hydra/", "hydra."))])
    options = OmegaConf.to_container(cfg.dataset, resolve=False) if "dataset" in cfg else {}
    return options.get("name", ""), options


def _listed_cells(args: list[str]) -> int:
    """How many cells a sample's list names (`cells=unnas-searched:A+B`, or its recipe's), else a large number."""
    from hydra import compose, initialize_config_dir

    from study.commands.cli import CONF_DIR

    overrides = [a for a in args if "=" in a and not a.startswith(("-", "n="))]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cells = compose("sample", overrides=overrides).get("cells")
    return len(str(cells).split(":", 1)[1].split("+")) if cells and ":" in str(cells) else 10**6


def shrink(cmd: str, scratch: Path, data: dict[str, Path]) -> list[str]:
    """The command line the test runs for `cmd` (see the module's rule)."""
    cmd = cmd.replace("<study_dir>", "studies/default")
    words = shlex.split(cmd)
    module, args = words[2], words[3:]
    args = [re.sub(r"(=|\[)/tmp/", rf"\g<1>{scratch}/tmp/", a) for a in args]
    args = [a.replace("/path/to/my_truth.csv", str(scratch / "my_truth.csv")) for a in args]
    args = [re.sub(r"unnas:\S*unnas_summaries\.zip", f"unnas:{scratch / 'unnas_summaries.zip'}", a) for a in args]
    slurm = "hydra/launcher=slurm" in args
    if module == "study.sample":
        listed = _listed_cells(args)  # a list that names its cells (`unnas-searched:A+B`) holds that many
        args = [a for a in args if not a.startswith("n=")] + \
            [f"n={min(3, listed, int(next((a[2:] for a in args if a.startswith('n=')), 3)))}"]
    if module in ("study.train", "study.search"):
        args = [a for a in args if not re.match(r"^(search_)?budget\.(warmup_)?epochs=", a)
                and not a.startswith("workers=")]
        args += ["budget=tiny" if module == "study.train" else "search_budget=tiny", "workers=1"]
        name, options = _dataset(module, args)
        if name in data:
            args = [a for a in args if not a.startswith("data_root=")] + [f"data_root={data[name]}"]
            if "train_subset" in options:
                args += ["dataset.train_subset=0", "dataset.test_subset=0"]
            if name != "cifar10" and "n_classes" in options:
                args.append(f"dataset.n_classes={2 if name == 'imagefolder' else 3}")
            if "resize" in options and module == "study.train":  # ImageNet's format: 64 px crops, a narrow network
                args += ["dataset.image_size=64", "dataset.resize=72", "budget.width=4"]
            if "resize" in options and module == "study.search":  # a streamed search: 32 px crops
                args += ["dataset.image_size=32", "dataset.resize=36"]
        if slurm:
            args.append("dry_run=true")
    args = [a.replace("data_root=/data/imagenet", f"data_root={data['imagenet']}") for a in args]
    return [sys.executable, "-m", module, *args]


def _truth_csv(scratch: Path) -> None:
    """A user's truth file for the page's default study: one measure per sampled cell."""
    import json

    cells = scratch / "studies" / "default" / "cells.jsonl"
    if cells.exists():
        rows = [json.loads(line) for line in cells.read_text().splitlines() if line.strip()]
        (scratch / "my_truth.csv").write_text("arch,acc\n" + "".join(f"{r['arch']},{0.5 + k / 100}\n"
                                                                      for k, r in enumerate(rows)))


def run_page(page: Path, scratch: Path, data: dict[str, Path]) -> list[str]:
    """Run a page's commands in order; returns one problem line per command that did not pass."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    problems = []
    for cmd in commands(page):
        _truth_csv(scratch)
        argv = shrink(cmd, scratch, data)
        try:
            done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            problems.append(f"{page.name}: `{cmd}` ran over 600 s\n    ran: {shlex.join(argv[1:])}")
            continue
        err = done.stderr.strip().splitlines()
        refusal = next((why for key, why in REFUSALS.items() if key in cmd), None)
        if done.returncode == 0 and "Traceback" not in done.stderr:
            continue
        if refusal and done.returncode == 2 and len([ln for ln in err if ln.startswith("error:")]) == 1 \
                and "Traceback" not in done.stderr and refusal in done.stderr:
            continue
        problems.append(f"{page.name}: `{cmd}` -> exit {done.returncode}: {' | '.join(err[-3:])[:600]}\n"
                        f"    ran: {shlex.join(argv[1:])}")
    return problems


def test_the_collector_finds_the_readme_commands():
    found = commands(ROOT / "README.md")
    assert "python -m study.sample n=500" in found and "python -m analysis.correlate" in found
    assert any(c.startswith("python -m study.search -m") and "seed=0,1,2" in c for c in found)
    assert not any("#" in c for c in found)


@pytest.mark.docs  # about 7 minutes on one core; `pytest -m docs` runs it alone
def test_every_documented_command_runs_as_written(tmp_path):
    pages = [p for p in PAGES if commands(p)]
    data = _fixtures(tmp_path)
    problems = [line for page in pages for line in run_page(page, tmp_path, data)]
    total = sum(len(commands(p)) for p in pages)
    assert not problems, f"{len(problems)} of {total} documented commands failed:\n" + "\n".join(problems)


def _benchmark_lines() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        lines = page.read_text().split("\n")
        for i, line in enumerate(lines):
            if line.startswith("    ") and line.strip().startswith(("python benchmarks/", "bash benchmarks/")):
                out.append((page.name, re.sub(r"\s+#.*$", "", _joined(lines, i)[0])))
            elif not line.startswith("    "):
                out += [(page.name, cmd.strip()) for cmd in re.findall(r"`((?:python|bash) benchmarks/[^`]+)`", line)]
    return out


@pytest.mark.parametrize("page,cmd", _benchmark_lines())
def test_documented_benchmark_flags_exist(page, cmd):
    """Benchmarks measure for minutes to hours: the docs' lines are checked to start and to use flags (and
    rung names) the script knows, not run."""
    words = shlex.split(cmd)
    script = ROOT / words[1]
    assert script.exists(), f"{page}: {cmd}: no {words[1]}"
    if words[0] == "bash":
        return
    helped = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert helped.returncode == 0, helped.stderr[-500:]
    for flag in [w for w in words[2:] if w.startswith("--")]:
        assert flag in helped.stdout, f"{page}: {cmd}: {words[1]} has no {flag}"
