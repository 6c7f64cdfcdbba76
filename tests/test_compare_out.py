"""Comparisons and read-only studies (issue 16, items 6 and 4): a comparison goes to its own folder and
explains the cells it leaves out; `out=PATH` analyses a study that cannot be written, and training a
read-only study is refused in one line. Read-only is real: a read-only bind mount (root ignores
permission bits), or permission bits for an ordinary user."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis.correlate import analyse
from tests.test_analysis_correlate import request, write_study


def two_studies(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"k{i:02d}" for i in range(12)]
    own = {c: v for c, v in zip(ids, rng.uniform(0.5, 0.9, 12))}
    a = write_study(tmp_path / "a", ids, {("supervised", 0): own, ("rotation", 0): {c: v / 2 for c, v in own.items()}})
    b = write_study(tmp_path / "b", ids[2:], {("supervised", 0): {c: own[c] for c in ids[2:]}}, dataset="cifar10")
    return a, b, ids


def test_compare_writes_its_own_folder_and_names_the_study_lacking_cells(cli, tmp_path, caplog):
    a, b, ids = two_studies(tmp_path)
    assert cli("analysis.correlate", f"study_dir={a}", "bootstrap=50", "permutations=50", "trials=50").returncode == 0
    own = (a / "analysis" / "cells.csv").read_bytes()
    done = cli("analysis.correlate", f"study_dir={a}", f"compare=[{b}]", "bootstrap=50", "permutations=50",
               "trials=50")
    assert done.returncode == 0, done.stderr
    assert (a / "analysis" / "cells.csv").read_bytes() == own  # the study's own analysis is untouched
    folder = a / "analysis" / "compare-a-b"
    assert len(pd.read_csv(folder / "cells.csv")) == 12 and (folder / "report.md").exists()
    assert "re-sampled" not in done.stdout + done.stderr
    res, _, _ = analyse(request(a, compare=[str(b)]))
    reasons = dict(zip(res.dropped["cell_id"], res.dropped["reason"]))
    assert set(reasons) == set(ids[:2]) and all(r.startswith("not sampled in b") for r in reasons.values())


@contextlib.contextmanager
def read_only(folder):
    """`folder` made read-only for real: a read-only bind mount as root, permission bits otherwise."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    mount = shutil.which("mount")
    ok = mount and subprocess.run([mount, "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if ok and subprocess.run([mount, "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(folder)], capture_output=True)
        ok = False
    if not ok:
        pytest.skip("running as root without the right to mount: no way to make a folder read-only for root")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_study_train_is_refused_and_correlate_writes_elsewhere(cli, tmp_path):
    a, _, _ = two_studies(tmp_path)
    before = sorted(p.relative_to(a) for p in a.rglob("*"))
    with read_only(a):
        assert not os.access(a, os.W_OK) or os.geteuid() == 0
        train = cli("study.train", f"study_dir={a}", "budget=tiny")
        assert train.returncode == 2 and train.stderr.count("\n") == 1, train.stderr
        assert "read-only" in train.stderr and "Traceback" not in train.stderr
        refused = cli("analysis.correlate", f"study_dir={a}")
        assert refused.returncode == 2 and "out=PATH" in refused.stderr and refused.stderr.count("\n") == 1
        out = tmp_path / "mine"
        done = cli("analysis.correlate", f"study_dir={a}", f"out={out}", "bootstrap=50", "permutations=50",
                   "trials=50")
        assert done.returncode == 0, done.stderr
    assert (out / "report.md").exists() and any((out / "logs" / "correlate").iterdir())
    assert sorted(p.relative_to(a) for p in a.rglob("*")) == before
