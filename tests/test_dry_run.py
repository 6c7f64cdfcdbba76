"""`dry_run=true` refuses the launcher settings the real command refuses, though the dry run drops them."""

from __future__ import annotations

import pytest

from study.commands.argv import CommandLine, expand
from tests.test_bad_input import assert_refused
from tests.test_cli import sampled  # noqa: F401  (fixture: a sampled study)


@pytest.mark.parametrize("launcher, words", [
    (["hydra.launcher.bogus_key=3"], ["hydra.launcher.bogus_key"]),
    (["hydra.launcher.partition=gpu"], ["hydra.launcher.partition"]),  # the basic launcher has no partition
    (["hydra/launcher=slurm", "hydra.launcher.bogus_key=3"], ["hydra.launcher.bogus_key"]),
    (["hydra/launcher=slurm", "hydra.launcher.timeout_min=soon"], ["hydra.launcher.timeout_min", "soon"]),
    (["hydra/launcher=nosuch"], ["nosuch"]),
])
def test_a_dry_run_refuses_what_the_real_run_refuses(inline, sampled, launcher, words):  # noqa: F811
    for dry in ([], ["dry_run=true"]):
        assert_refused(inline("study.train", "-m", *launcher, *dry, "budget=tiny", f"study_dir={sampled}"), words)


def test_a_dry_run_with_good_launcher_settings_goes_on(inline, sampled):  # noqa: F811
    with pytest.raises(AssertionError, match="Hydra started"):  # the tripwire: every check passed
        inline("study.train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "dry_run=true",
               "budget=tiny", f"study_dir={sampled}")


def test_the_settings_a_dry_run_drops_are_kept_aside_for_the_check():
    line = expand(CommandLine.parse(["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "dry_run=true"]))
    assert line.argv() == ["-m", "dry_run=true", "hydra/launcher=basic"]
    assert [o.input_line for o in line.set_aside] == ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
