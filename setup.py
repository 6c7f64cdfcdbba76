"""Ship the top-level conf/ inside the wheel as study/conf, where study/commands/config.py finds it installed."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithConf(build_py):
    """build_py that also copies conf/ (without the site-specific, git-ignored conf/local/) to study/conf."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "study" / "conf"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / "conf", target, ignore=shutil.ignore_patterns("local", "__pycache__"))


setup(cmdclass={"build_py": BuildWithConf})
