"""Every command's --version and --help (study/commands/entry.py, each config's hydra.help), run as users do."""

from __future__ import annotations

import pytest

import study
from study.commands.entry import SCRIPTS

COMMANDS = sorted(SCRIPTS.items())  # console script -> module: every command, parametrised


@pytest.mark.parametrize("script, module", COMMANDS)
def test_version_is_this_tools_and_needs_no_study(cli, tmp_path, script, module):
    # Run where no study exists: the version is printed before any check could refuse the command.
    done = cli(module, "--version", f"study_dir={tmp_path / 'none'}", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"unnas-study {study.__version__} ({module})\n", "")


@pytest.mark.parametrize("script, module", COMMANDS)
def test_help_describes_the_command(cli, tmp_path, script, module):
    done = cli(module, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0]
    if module == "launch.status":  # not a Hydra app: its own usage line and the module's description
        assert first.startswith("usage: python -m launch.status") and "folder under" in done.stdout
        return
    assert first.startswith(f"{script} (python -m {module}): ") and len(first) > 80
    assert "Hydra" not in first and "== Settings (key=value) ==" in done.stdout


@pytest.mark.parametrize("topic", ["defaults", "searchpath", None])
def test_info_takes_its_optional_topic(cli, tmp_path, topic):
    done = cli("study.train", "--info", *([topic] if topic else []), "budget=tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"defaults": "Defaults List", "searchpath": "Config search path", None: "Config search path"}[topic] \
        in done.stdout
