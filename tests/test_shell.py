"""Printed commands survive the shell and Hydra's grammar: every value comes back exactly as it was."""

from __future__ import annotations

import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from study.shell import command, hydra_value

VALUES = ["studies/default", "/tmp/a b", "/tmp/für", "it's", 'say "hi"', "both'\"", "a\\b", "x\\", "x\\'y", "a,b",
          "$HOME/x", "${oc.env:HOME}/x", "a=b", "true", "null", "42", "1e3", "-x", "~/x", "a]b", "(1)", "tab\there",
          "  lead", "ü"]


@pytest.mark.parametrize("value", VALUES)
def test_a_value_printed_in_a_command_reads_back_unchanged(value):
    words = shlex.split(command("study.train", "-m", study_dir=value))
    assert words[:4] == ["python", "-m", "study.train", "-m"]
    parsed = OverridesParser.create().parse_override(words[4]).value()
    assert OmegaConf.create({"v": parsed}).v == value  # no interpolation, no type change, no \\u escape
    assert "\\u" not in command("study.train", study_dir=value)


def test_plain_words_stay_bare():
    assert hydra_value("studies/default") == "studies/default"
    assert hydra_value("/tmp/a b") == '"/tmp/a b"' and hydra_value("für") == '"für"'
