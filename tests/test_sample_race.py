"""Two study.sample commands on one folder at once: the check and the write are one locked step, so the
second sees the first's sample and is refused (or finds it already there); nothing is silently replaced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import pytest
from hydra import compose, initialize_config_dir

from study import sample as app
from study.commands.cli import CONF_DIR
from study.errors import UserError
from study.files import locked
from tests.conftest import ROOT


def _request(study, *overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return app.parse(compose("sample", overrides=[f"study_dir={study}", *overrides]))


def _seed(study) -> int:
    return json.loads((study / "study.json").read_text())["sample"]["seed"]


def test_the_second_of_two_checked_samples_is_refused_at_its_write(tmp_path):
    study = tmp_path / "s"
    first, second = _request(study, "n=6", "seed=0"), _request(study, "n=6", "seed=1")
    app.check(first)
    app.check(second)  # both checked before either wrote: what two commands started together see
    app.task(first)
    cells = (study / "cells.jsonl").read_bytes()
    with pytest.raises(UserError, match="already has a different sample"):
        app.task(second)
    assert (study / "cells.jsonl").read_bytes() == cells and _seed(study) == 0
    app.task(_request(study, "n=6", "seed=0"))  # the same sample again: nothing to do, no refusal


def test_a_check_waits_for_a_sample_being_written_and_sees_it_whole(tmp_path):
    # A writer holds the lock between its two files: the cells are there, study.json not yet. A check that
    # read them without the lock took the half-written pair for a hand-written list (CI, stop 37).
    drawn, study = tmp_path / "drawn", tmp_path / "s"
    app.task(_request(drawn, "n=6", "seed=0"))
    seen: list[BaseException | None] = []

    def check():
        try:
            app.check(_request(study, "n=6", "seed=1"))
            seen.append(None)
        except UserError as e:
            seen.append(e)

    study.mkdir()
    with locked(study / app.SAMPLE_LOCK):
        shutil.copy(drawn / "cells.jsonl", study / "cells.jsonl")
        checker = threading.Thread(target=check)
        checker.start()
        time.sleep(1.0)  # long enough for an unlocked check to finish on the half-written pair
        shutil.copy(drawn / "study.json", study / "study.json")
    checker.join(timeout=60)
    (err,) = seen
    assert err is not None and "already has a different sample (seed)" in str(err), err


def test_two_sample_commands_at_once_never_both_write(tmp_path):
    study = tmp_path / "s"
    cmd = [sys.executable, "-m", "study.sample", "n=40", f"study_dir={study}"]
    procs = [subprocess.Popen([*cmd, f"seed={s}"], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (0, 1)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results  # never both: one wrote, one was refused
    (err,) = [e for c, e in results if c == 2]
    assert len(err.strip().splitlines()) == 1 and "different sample" in err, err
    winner = next(s for s, (c, _) in enumerate(results) if c == 0)
    assert _seed(study) == winner
