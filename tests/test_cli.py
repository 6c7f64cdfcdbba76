"""Bad input on the command line: one line on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import pytest


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def assert_refused(done, *words):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("args,words", [
    (["n=0"], ["n must be a positive integer"]),
    (["n=-3"], ["n must be a positive integer"]),
    (["n=abc"], ["n must be an integer", "abc"]),
    (["n=2.5"], ["n must be an integer"]),
    (["n=99999"], ["n<=4929"]),
    (["space=nb999"], ["unknown space", "nb201"]),
    (["dataset=mnist"], ["unknown dataset", "digits"]),
    (["budget=huge"], ["unknown budget", "default", "paper", "tiny"]),
    (["seed=x"], ["seed must be an integer"]),
    (["force=maybe"], ["force must be true or false"]),
    (["nn=3"], ["nn"]),
    (["n=3", "n=[bad"], ["parse"]),
])
def test_sample_refuses_bad_input(cli, tmp_path, args, words):
    study = tmp_path / "s"
    assert_refused(cli("study.sample", *args, f"study_dir={study}"), *words)
    assert not study.exists()


def test_train_and_correlate_before_sampling(cli, tmp_path):
    study = tmp_path / "s"
    assert_refused(cli("study.train", f"study_dir={study}"), "study.sample")
    assert_refused(cli("analysis.correlate", f"study_dir={study}"), "study.sample")
    assert not study.exists()


def test_study_dir_that_is_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    for module in ("study.sample", "study.train", "analysis.correlate"):
        assert_refused(cli(module, f"study_dir={f}"), "is a file")
    assert f.read_text() == "keep me"


@pytest.fixture
def sampled(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=2", f"study_dir={study}").returncode == 0
    return study


@pytest.mark.parametrize("args,words", [
    (["objective=colourisation"], ["unknown objective", "rotation", "supervised"]),
    (["-m", "objective=rotation,nope"], ["unknown objective", "nope"]),
    (["-m", "seed=0,x"], ["seed must be an integer"]),
    (["budget.epochs=0"], ["budget.epochs must be a positive integer"]),
    (["budget.lr=fast"], ["budget.lr must be a number"]),
    (["workers=0"], ["workers must be a positive integer"]),
    (["device=tpu9"], ["device"]),
    (["device=cuda"], ["cuda"]),
])
def test_train_refuses_bad_input_and_writes_nothing(cli, sampled, args, words):
    before = files_under(sampled)
    assert_refused(cli("study.train", *args, f"study_dir={sampled}"), *words)
    assert files_under(sampled) == before


def test_correlate_without_complete_records(cli, sampled):
    assert_refused(cli("analysis.correlate", f"study_dir={sampled}"), "no complete run records", "study.train")
    assert_refused(cli("analysis.correlate", "metric=worst", f"study_dir={sampled}"), "metric")


def test_resampling_a_study_with_runs_needs_force(cli, tiny_study):
    cells = (tiny_study / "cells.jsonl").read_text()
    assert_refused(cli("study.sample", "n=4", "seed=9", f"study_dir={tiny_study}"), "force=true")
    assert (tiny_study / "cells.jsonl").read_text() == cells
    same = cli("study.sample", "n=4", f"study_dir={tiny_study}")
    assert same.returncode == 0 and (tiny_study / "cells.jsonl").read_text() == cells


@pytest.mark.parametrize("old,new", [("nor_conv_3x3", "conv_3x3"), ("~0|", "~7|"), ('"id": "', '"id": "f')])
def test_hand_edited_cells_file(cli, sampled, old, new):
    path = sampled / "cells.jsonl"
    text = path.read_text()
    if old not in text:
        old = "skip_connect" if old == "nor_conv_3x3" else old
    path.write_text(text.replace(old, new, 1))
    assert_refused(cli("study.train", f"study_dir={sampled}"), "cells.jsonl", "re-sample")
