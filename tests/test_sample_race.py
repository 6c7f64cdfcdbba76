"""Two study.sample commands on one folder at once: the check and the write are one locked step, so the
second sees the first's sample and is refused (or finds it already there); nothing is silently replaced."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from study import sample as app
from study.commands.cli import CONF_DIR
from study.errors import UserError
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
