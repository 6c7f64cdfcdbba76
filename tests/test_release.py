"""What a release carries besides the code: one version, the licence, the citation, the changelog."""

from __future__ import annotations

import re
import tomllib

import yaml

import study
from tests.conftest import ROOT


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "study.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", study.__version__)


def test_the_newest_release_in_the_changelog_is_this_version():
    releases = re.findall(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert releases and releases[0] == study.__version__


def test_the_licence_file_is_the_one_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_citation_names_the_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert (cff["cff-version"], cff["type"], cff["license"]) == ("1.2.0", "software", "MIT")
    assert all(key in cff for key in ("message", "title", "authors"))
    paper, = [r for r in cff["references"] if r["title"] == "Are Labels Necessary for Neural Architecture Search?"]
    assert paper["year"] == 2020 and [a["family-names"] for a in paper["authors"]][0] == "Liu"
    assert "version" not in cff  # one source for the version: study/__init__.py
