"""Shared fixtures: run the real commands in a subprocess, and small studies on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(module: str, *args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m module args...` as a user would; returns the finished process (text output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli():
    """The `run_cli` helper as a fixture."""
    return run_cli


@pytest.fixture
def inline(monkeypatch, capsys):
    """Run `python -m module args...` in this process up to where Hydra would start; returns (status, stderr).

    For refusals: a command that passes its checks fails the test (Hydra is replaced by a tripwire).
    """
    import importlib

    import hydra

    def tripwire(*_, **__):
        raise AssertionError("the command was accepted: Hydra started")

    monkeypatch.setattr(hydra, "main", tripwire)

    def run(module: str, *args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", [module, *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            importlib.import_module(module).main()
        return stop.value.code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A sampled and trained study (4 cells, rotation + supervised, tiny budget), shared read-only."""
    study = tmp_path_factory.mktemp("study") / "tiny"
    for args in (("study.sample", "n=4", f"study_dir={study}"),
                 ("study.train", "-m", "objective=rotation,supervised", "budget=tiny", f"study_dir={study}")):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
    return study
