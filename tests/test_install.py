"""The built wheel, installed into a fresh environment and run outside the clone (issue 33)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPTS = ("unnas-sample", "unnas-train", "unnas-search", "unnas-correlate", "unnas-paper", "unnas-status")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel built from this clone; torch & co. come from this interpreter's
    site-packages through a .pth (no network). Returns the venv's bin folder."""
    base = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(base / "wheel"), str(ROOT)], check=True, capture_output=True, text=True)
    wheel, = (base / "wheel").glob("unnas_study-*.whl")
    env = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env)
    python = env / "bin" / "python"
    packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    # Without PYTHONPATH (the clone's build metadata would pass for this package already installed), and before
    # the .pth (pip would take the editable install of the clone seen through it for this package). A plain
    # path line, so the directory is searched but its own .pth files (that editable install's finder) are not.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, env=_clean_env())
    (packages / "parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env / "bin"


def _clean_env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HYDRA_FULL_ERROR": "0"}


def _run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run the installed `python ...` or console script in `cwd`, with nothing of the clone on the path."""
    exe = argv[0] if argv[0] == "python" else str(bin_dir / argv[0])
    cmd = [str(bin_dir / "python"), *argv[1:]] if argv[0] == "python" else [exe, *argv[1:]]
    return subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                          timeout=600)


def test_the_package_runs_from_its_own_files(installed, tmp_path):
    code = "import study; from study.commands.cli import CONF_DIR; print(study.__file__); print(CONF_DIR)"
    out = _run(installed, tmp_path, "python", "-c", code)
    module, conf = out.stdout.split()
    assert not Path(module).is_relative_to(ROOT) and Path(conf).is_relative_to(Path(module).parent)
    assert (Path(conf) / "train.yaml").is_file() and not (Path(conf) / "local").exists()


def test_sample_train_correlate_outside_the_clone(installed, tmp_path):
    for argv in (("python", "-m", "study.sample", "n=3", "study_dir=X"),
                 ("python", "-m", "study.train", "budget=tiny", "study_dir=X"),
                 ("python", "-m", "analysis.correlate", "study_dir=X")):
        done = _run(installed, tmp_path, *argv)
        assert done.returncode == 0, done.stderr[-2000:]
    assert len((tmp_path / "X" / "cells.jsonl").read_text().splitlines()) == 3
    assert len(list((tmp_path / "X" / "runs").rglob("*.json"))) >= 3
    assert (tmp_path / "X" / "analysis" / "report.md").is_file()


@pytest.mark.parametrize("argv", [("python", "-m", "study.train"), ("unnas-train",), ("unnas-correlate",)])
def test_cfg_job_outside_the_clone(installed, tmp_path, argv):
    done = _run(installed, tmp_path, *argv, "--cfg", "job", "study_dir=nowhere")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "study_dir: nowhere" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_scripts_print_this_tools_version(installed, tmp_path, script):
    done = _run(installed, tmp_path, script, "--version")
    assert done.returncode == 0 and done.stdout.startswith(f"unnas-study {study_version()} ("), done.stderr[-2000:]


def test_site_values_in_working_directory_override(installed, tmp_path):
    (tmp_path / "conf" / "local").mkdir(parents=True)
    (tmp_path / "conf" / "local" / "local.yaml").write_text("timeout_min: 7\n")
    done = _run(installed, tmp_path, "unnas-train", "--cfg", "hydra", "hydra/launcher=local")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "timeout_min: 7" in done.stdout
    plain = _run(installed, tmp_path / "conf", "unnas-train", "--cfg", "hydra", "hydra/launcher=local")
    assert "timeout_min: 7" not in plain.stdout  # the folder is read from where the command runs


@pytest.mark.parametrize("script, typed, expected", [
    ("unnas-train", "objective=rot", "objective=rotation"),
    ("unnas-sample", "space=nb2", "space=nb201"),
    ("unnas-correlate", "budget=ti", "budget=tiny"),
])
def test_completion_query_answers(installed, tmp_path, script, typed, expected):
    env = {**_clean_env(), "COMP_LINE": f"{script} {typed}", "COMP_POINT": str(len(script) + 1 + len(typed))}
    done = subprocess.run([str(installed / script), "-sc", "query=bash"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [expected]


def test_bash_hook_completes_a_console_script(installed, tmp_path):
    """What docs/install.md tells users to run: Hydra's hook, installed for unnas-train, fills in a value."""
    script = ('eval "$(unnas-train -sc install=bash)"; COMP_LINE="unnas-train objective=rot"; '
              'COMP_WORDS=(unnas-train objective=rot); COMP_CWORD=1; COMP_POINT=${#COMP_LINE}; '
              'hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"')
    env = {**_clean_env(), "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["objective=rotation"], done.stderr[-2000:]


def test_the_wheel_carries_the_version_and_licences(installed, tmp_path):
    code = ("import importlib.metadata as m, study; d = m.distribution('unnas-study'); "
            "print(d.version, study.__version__, *(any(f.name == n for f in d.files) for n in ('LICENSE', "
            "'digits.npz', 'digits.LICENSE')))")  # the digits ship with the package, their licence beside them
    out = _run(installed, tmp_path, "python", "-c", code)
    assert out.stdout.split() == [study_version(), study_version(), "True", "True", "True"], out.stderr[-2000:]


def study_version() -> str:
    """The version the clone declares (study/__init__.py)."""
    import study

    return study.__version__
