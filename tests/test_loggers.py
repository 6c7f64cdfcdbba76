"""Per-epoch tracking (`logger=csv|tensorboard`, study/training/loggers.py) as a user runs it, and the terminal
progress bar (study/training/terminal.py): logging never changes a run's identity, never costs a run or its
record, refuses a missing package in one line, and off a terminal every progress line stays as it was."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from study.commands.cli import CONF_DIR
from study.commands.request import parse
from study.training import loggers
from study.training.jobs import Progress
from study.training.loggers import CsvLog, LoggerSettings, Tracker, append_lines, keep_epochs
from study.training.runner import Runs
from study.training.terminal import ERASE, Tally, bar, render
from tests.conftest import run_cli

FAST = ["budget=tiny", "workers=1", "threads=1"]
LOGGER_CHOICES = sorted(p.stem for p in (CONF_DIR / "logger").glob("*.yaml"))


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> Path:
    """A sample of two cells, copied by each test that trains on it."""
    study = tmp_path_factory.mktemp("loggers") / "s"
    done = run_cli("study.sample", "n=2", f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    return study


def fresh(sampled: Path, tmp_path: Path) -> Path:
    study = tmp_path / "s"
    study.mkdir()
    for name in ("cells.jsonl", "study.json"):
        (study / name).write_bytes((sampled / name).read_bytes())
    return study


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_logger_is_not_part_of_a_runs_identity(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        setups = {name: parse(compose("train", [f"logger={name}", f"study_dir={tmp_path}"])).setup
                  for name in LOGGER_CHOICES}
    assert {s.logger.name for s in setups.values()} == set(LOGGER_CHOICES) >= {"none", "csv", "tensorboard"}
    assert len({s.identity_hash() for s in setups.values()}) == 1
    before = {k: v for k, v in setups["csv"].config.items() if k != "logger"}  # a record's config before loggers
    old = parse(OmegaConf.create(before)).setup
    assert old.logger.name == "none" and old.identity_hash() == setups["csv"].identity_hash()


def test_csv_rows_per_epoch_a_finished_run_skipped_and_a_failing_logger_costs_its_run_nothing(sampled, tmp_path):
    study = fresh(sampled, tmp_path)
    first = run_cli("study.train", *FAST, "budget.epochs=2", "cells=[0]", f"study_dir={study}")  # logging off
    assert first.returncode == 0, first.stderr
    (trained,) = (study / "runs").rglob("*.json")
    mtime, folder = trained.stat().st_mtime_ns, trained.parent.relative_to(study)
    cells = [json.loads(line)["id"] for line in (study / "cells.jsonl").read_text().splitlines()]
    blocked = study / "logs" / "csv" / folder.parent / "seed1" / f"{cells[1]}.csv"
    blocked.mkdir(parents=True)  # where one run's table should go: its logger fails, the run must not
    again = run_cli("study.train", *FAST, "budget.epochs=2", "seed=[0,1]", "logger=csv", f"study_dir={study}")
    assert again.returncode == 0, again.stderr
    assert "skipping 1 of 4 runs with a complete record" in again.stdout, again.stdout
    assert trained.stat().st_mtime_ns == mtime  # the run trained without a logger is not trained again
    records = {p.relative_to(study).with_suffix(""): json.loads(p.read_text())
               for p in (study / "runs").rglob("*.json")}
    assert len(records) == 4 and all(r["status"] == "complete" for r in records.values())
    warnings = [line for line in again.stdout.splitlines() if "logger csv stopped" in line]
    assert len(warnings) == 1 and f"seed1/{cells[1]}.json" in warnings[0], again.stdout
    tables = {p.relative_to(study / "logs" / "csv").with_suffix(""): p for p in (study / "logs" / "csv").rglob("*.csv")
              if p.is_file()}
    untracked = {folder / cells[0], folder.parent / "seed1" / cells[1]}  # trained without a logger; logger failed
    assert sorted(tables) == sorted(set(records) - untracked)  # one table per run trained, beside its record
    for key, table in tables.items():
        rows, rec = rows_of(table), records[key]
        assert [r["epoch"] for r in rows] == ["1", "2"] and {r["seed"] for r in rows} == {str(rec["seed"])}
        assert {r["study"] for r in rows} == {str(study)} and {r["cell_id"] for r in rows} == {rec["cell_id"]}
        assert {r["arch"] for r in rows} == {rec["arch"]} and {r["identity"] for r in rows} == {rec["identity"]}
        assert [float(r["test_acc"]) for r in rows] == rec["history"]["test_acc"]
        assert [float(r["train_loss"]) for r in rows] == pytest.approx(rec["history"]["train_loss"])
        assert [float(r["lr"]) for r in rows] == [0.1, 0.05]  # the cosine schedule's, epoch by epoch
        assert all(float(r["epoch_s"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)


def test_tensorboard_one_run_per_record_with_scalars_per_epoch(sampled, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = fresh(sampled, tmp_path)
    done = run_cli("study.train", *FAST, f"study_dir={study}", "budget.epochs=2", "logger=tensorboard")
    assert done.returncode == 0, done.stderr
    for path in sorted((study / "runs").rglob("*.json")):
        rec = json.loads(path.read_text())
        events = EventAccumulator(str(study / "logs" / "tensorboard" / path.relative_to(study).with_suffix("")))
        events.Reload()
        assert {"train_loss", "test_acc", "test_loss", "lr", "epoch_s"} <= set(events.Tags()["scalars"])
        acc = events.Scalars("test_acc")
        assert [e.step for e in acc] == [1, 2]
        assert [e.value for e in acc] == pytest.approx(rec["history"]["test_acc"], abs=1e-6)


def test_a_logger_that_fails_mid_run_stops_logging_that_run_alone(tmp_path, monkeypatch, caplog):
    calls = []

    def write(self, row):
        calls.append(row["epoch"])
        if row["epoch"] == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(CsvLog, "write", write)
    settings = LoggerSettings("csv", tmp_path)
    tracker = Tracker(settings, tmp_path / "runs" / "x" / "t" / "seed0" / "c.json", {"seed": 0}, 0)
    for epoch in (1, 2, 3, 4):
        tracker.epoch({"epoch": epoch})
    tracker.close()
    assert calls == [1, 2]
    stopped = [r for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and "No space left on device" in stopped[0].getMessage()
    assert stopped[0].levelno == logging.WARNING and "\n" not in stopped[0].getMessage()


def test_a_short_write_is_cut_back_and_a_resumed_table_keeps_each_epoch_once(tmp_path, monkeypatch):
    table = tmp_path / "c.csv"
    append_lines(table, "epoch,x\n1,a\n")
    real_write = os.write
    monkeypatch.setattr(loggers.os, "write", lambda fd, data: real_write(fd, data[:3]))  # the disk fills up
    with pytest.raises(OSError):
        append_lines(table, "2,b\n3,c\n")
    monkeypatch.setattr(loggers.os, "write", real_write)
    assert table.read_text() == "epoch,x\n1,a\n"
    table.write_text("epoch,x\n1,a\n2,b\n3,c\n4,d")  # epochs 3 logged past the checkpoint at 2, then a torn line
    assert keep_epochs(table, 2) == ["epoch", "x"] and table.read_text() == "epoch,x\n1,a\n2,b\n"
    log = CsvLog(tmp_path / "c", {"seed": 0}, 2, {})
    log.write({"epoch": 3, "x": "c2"})
    assert [r["epoch"] for r in rows_of(table)] == ["1", "2", "3"] and rows_of(table)[-1]["x"] == "c2"


def test_a_search_logs_its_epochs_like_a_run(sampled, tmp_path):
    study = fresh(sampled, tmp_path)
    done = run_cli("study.search", "search_budget=tiny", "workers=1", "threads=1", "dataset.test_fraction=0.8",
                   "logger=csv", f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    rec = json.loads(next((study / "searches").rglob("seed0.json")).read_text())
    rows = rows_of(next((study / "logs" / "csv" / "searches").rglob("seed0.csv")))
    assert [int(r["epoch"]) for r in rows] == [e["epoch"] for e in rec["history"]] == [1, 2]
    assert [r["cell"] for r in rows] == [e["cell"] for e in rec["history"]]
    assert [float(r["truth/nb201-cifar10"]) for r in rows] == [e["truth"]["nb201-cifar10"] for e in rec["history"]]
    assert {r["method"] for r in rows} == {"darts"} and all(float(r["weight_loss"]) > 0 for r in rows)


@pytest.mark.parametrize("module", ["study.train", "study.search"])
def test_tensorboard_without_its_package_is_refused_in_one_line(module, inline, sampled, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    status, err = inline(module, "logger=tensorboard", f"study_dir={sampled}")
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'unnas-study[tensorboard]'" in err and "Traceback" not in err


FINISHED = [{"status": "complete", "cell_id": "a", "seed": 0, "test_acc_best": 0.5, "test_acc_final": 0.4,
             "wall_s": 1.0},
            {"status": "skipped", "cell_id": "b", "seed": 0, "reason": "in progress elsewhere"},
            {"status": "failed", "cell_id": "c", "seed": 0, "reason": "diverged at epoch 1", "wall_s": 2.0},
            {"status": "complete", "cell_id": "d", "seed": 0, "test_acc_best": 0.6, "test_acc_final": 0.6,
             "wall_s": 1.0}]


def lines_of(stream: io.StringIO) -> list[str]:
    return [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def console(monkeypatch):
    """The root logger printing to a console stream and a log file, as a command's is (Hydra's handlers)."""
    def make(console_stream: io.StringIO) -> io.StringIO:
        logfile = io.StringIO()
        handlers = [logging.StreamHandler(console_stream), logging.StreamHandler(logfile)]
        for h in handlers:
            h.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", handlers)
        monkeypatch.setattr(root, "level", logging.INFO)
        return logfile
    return make


def update_all(stderr: io.StringIO) -> None:
    progress = Progress(4, "supervised seed 0", Runs)
    with bar(stderr):
        for rec in FINISHED:
            progress.update(rec)


def test_off_a_terminal_progress_lines_are_unchanged(console):
    stdout, stderr = io.StringIO(), io.StringIO()
    logfile = console(stdout)
    update_all(stderr)
    left = [line.rsplit(", ", 1)[1] for line in lines_of(stdout) if line.startswith("[")]
    assert lines_of(stdout) == [
        f"[1/4] supervised seed 0 cell a: best 0.5000 final 0.4000 (1.0s), {left[0]}",
        "supervised seed 0 cell b: in progress elsewhere, skipped",
        f"[2/3] supervised seed 0 cell c: FAILED: diverged at epoch 1 (2.0s), {left[1]}",
        f"[3/3] supervised seed 0 cell d: best 0.6000 final 0.6000 (1.0s), {left[2]}"]
    assert all(x.endswith(" left") for x in left) and lines_of(logfile) == lines_of(stdout)
    assert stderr.getvalue() == ""


def test_on_a_terminal_finished_jobs_redraw_one_line_and_the_rest_prints_above_it(console, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stdout, stderr = Terminal(), Terminal()
    logfile = console(stdout)
    update_all(stderr)
    # Only the lines that are news print on the terminal; a job finished as planned is the bar's.
    assert [line.split(": ")[1] for line in lines_of(stdout)] == ["in progress elsewhere, skipped", "FAILED"]
    assert len(lines_of(logfile)) == 4  # the log file keeps every line
    drawn = stderr.getvalue()
    assert drawn.endswith(ERASE + "supervised seed 0 [####################] 3/3, 1 failed\n")
    assert drawn.count("\n") == 1 and "[1/4]" not in drawn and ERASE + "supervised seed 0 [#####..." in drawn


def test_the_bar_is_one_line_that_fits_the_terminal():
    assert render(Tally("supervised seed 0", 3, 10, 0, "1m05s"), 80) == (
        "supervised seed 0 [######..............] 3/10, 1m05s left")
    assert render(Tally("x", 10, 10, 2, "0m00s"), 40) == "x [##########] 10/10, 2 failed"
    narrow = render(Tally("rotation seed 0,1,2 shard 3/8 task 1/4", 1, 500, 0, "3h10m"), 40)
    assert len(narrow) == 39 and narrow.endswith("1/500, 3h10m left") and "..." in narrow
    assert render(Tally("x", 0, 0), 30) == "x [##########] 0/0"
