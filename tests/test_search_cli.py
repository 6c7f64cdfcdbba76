"""`python -m study.search` as a user runs it: a sweep judged every epoch, the found cells trained by
study.train as they are, launch.status and analysis.search on it, one-line refusals, and a search killed
with SIGKILL that resumes and ends with the record of one never interrupted."""

from __future__ import annotations

import json
import signal
import time

import pytest
import torch

from study.spaces import get_space
from study.training.methods import METHODS
from study.store.records import read_record
from tests.conftest import run_cli
from tests.test_faults import popen_cli

# Digits at 8 px, 359 training images (179 / 180), a C=4 supernet: a search epoch takes about a second.
FAST = ["search_budget=tiny", "workers=1", "threads=1", "dataset.test_fraction=0.8"]
TIMES = ("cpu_s", "wall_s", "train_cpu_s")


def records(study) -> list[dict]:
    return [read_record(p) for p in sorted((study / "searches").rglob("seed*.json"))]


@pytest.mark.slow
def test_a_sweep_judges_each_epoch_and_its_found_cells_train_with_labels_as_they_are(tmp_path):
    study = tmp_path / "s"
    methods = "method=" + ",".join(METHODS.names())
    done = run_cli("study.search", "-m", methods, "objective=rotation", *FAST, f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    recs = records(study)
    assert sorted(r["method"] for r in recs) == sorted(METHODS.names()) and all(r["status"] == "complete" for r in recs)
    space = get_space("nb201")
    for rec in recs:
        assert rec["epochs"] == len(rec["history"]) == 2 and rec["objective"] == "rotation"
        for entry in rec["history"]:
            cell = space.parse(entry["cell"])  # every derived string parses
            assert entry["truth"] == space.truth(cell) and set(entry["truth"]) == {
                "nb201_index", "nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120"}
            assert all(abs(sum(row) - 1) < 1e-5 for row in entry["alpha"]["cell"])
            assert entry["cpu_s"] > 0 and 0 <= entry["supernet_acc"] <= 1
        assert rec["arch"] == rec["history"][-1]["cell"] and rec["cell_epoch_cpu_s"] > 0 and rec["cpu_s"] > 0
    found = study / "found" / "nb201"
    rows = [json.loads(line) for line in (found / "cells.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {r["cell_id"] for r in recs}
    again = run_cli("study.search", "-m", methods, "objective=rotation", *FAST, f"study_dir={study}")
    assert again.returncode == 0 and (again.stdout + again.stderr).count("all 1 searches are complete") == 2, again.stdout
    trained = run_cli("study.train", "budget=tiny", "workers=1", "threads=1", "dataset.test_fraction=0.8",
                      f"study_dir={found}")
    assert trained.returncode == 0, trained.stderr
    assert len(list((found / "runs").rglob("*.json"))) == len(rows)
    status = run_cli("launch.status", f"study_dir={study}")
    assert status.returncode == 0 and "gdas/rotation" in status.stdout and "1 done, 0 failed" in status.stdout
    analysed = run_cli("analysis.search", f"study_dir={study}")
    assert analysed.returncode == 0, analysed.stderr
    out = study / "analysis" / "search"
    assert {"report.md", "summary.csv", "searches.csv", "epochs.csv", "truth_by_epoch.png", "alpha.png"} <= {
        p.name for p in out.iterdir()}
    assert "93.51" in (out / "report.md").read_text()  # beside the published rows


@pytest.mark.parametrize("args,says", [
    (["objective=naswot"], "objective 'naswot' is training-free"),
    (["space=nb101"], "space 'nb101' has no supernet"),
    (["method=random"], "unknown method 'random'"),
    (["method=gdas", "method.tau_min=20"], "tau_min <= tau_max"),
    (["search_budget.portion=1.5"], "portion must be in (0, 1)"),
])
def test_what_cannot_be_searched_is_refused_in_one_line_and_nothing_is_written(tmp_path, args, says):
    done = run_cli("study.search", *args, *FAST, f"study_dir={tmp_path / 's'}")
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()


def _epoch_of(study) -> int:
    ckpts = list((study / "searches").rglob("*.ckpt"))
    if not ckpts:
        return 0
    try:
        return int(torch.load(ckpts[0], map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # being replaced right now
        return 0


@pytest.mark.slow
def test_a_search_killed_mid_way_resumes_and_ends_with_the_record_of_one_never_interrupted(tmp_path):
    args = [*FAST, "method=gdas", "objective=supervised", "search_budget.epochs=5"]
    straight = tmp_path / "straight"
    assert run_cli("study.search", *args, f"study_dir={straight}").returncode == 0
    study = tmp_path / "killed"
    proc = popen_cli("study.search", *args, f"study_dir={study}")
    try:
        deadline = time.monotonic() + 300
        while _epoch_of(study) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
    killed_at = _epoch_of(study)
    assert 2 <= killed_at < 5, out
    assert not list((study / "searches").rglob("seed*.json"))  # no record of an unfinished search
    status = run_cli("launch.status", f"study_dir={study}")
    assert f"epoch {killed_at} of 5" in status.stdout and "python -m study.search" in status.stdout, status.stdout
    resumed = run_cli("study.search", *args, f"study_dir={study}")
    assert resumed.returncode == 0, resumed.stderr
    (a,), (b,) = records(straight), records(study)
    assert b["resumes"] == [killed_at] and a["resumes"] == []
    for key in ("arch", "cell_id", "alpha", "truth", "supernet_acc", "epochs"):
        assert a[key] == b[key], key
    strip = [[{k: v for k, v in e.items() if k not in TIMES} for e in r["history"]] for r in (a, b)]
    assert strip[0] == strip[1]
    assert not list((study / "searches").rglob("*.ckpt"))  # the record holds the result now


@pytest.mark.slow
def test_the_genotypes_found_in_the_darts_space_train_with_labels_as_a_study(tmp_path):
    study = tmp_path / "d"
    done = run_cli("study.search", "space=darts", "objective=rotation", "search_budget.epochs=1", *FAST,
                   f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    (rec,) = records(study)
    cell = get_space("darts").parse(rec["arch"])
    assert rec["truth"] is None and not cell.is_degenerate()  # DARTS' rule never keeps `none`
    assert set(rec["alpha"]) == {"normal", "reduce"} and len(rec["alpha_layout"]["normal"][0]) == 14
    found = study / "found" / "darts"
    trained = run_cli("study.train", "space=darts", "budget=tiny", "workers=1", "threads=1",
                      "dataset.test_fraction=0.8", f"study_dir={found}")
    assert trained.returncode == 0, trained.stderr
    (run,) = [json.loads(p.read_text()) for p in (found / "runs").rglob("*.json")]
    assert run["cell_id"] == rec["cell_id"] and run["status"] == "complete"
    analysed = run_cli("analysis.search", f"study_dir={study}")
    assert analysed.returncode == 0, analysed.stderr
    report = (study / "analysis" / "search" / "report.md").read_text()
    assert "darts/rotation" in report
    assert "Published" not in report  # NAS-Bench-201's published searches compare nothing in the DARTS space


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
def test_unnas_search_phase_runs_on_an_image_folder_with_the_imagenet_stem(tmp_path, streamed):
    """search_budget=unnas at tiny width: 2 epochs, alpha frozen in the first, the ImageNet-stem supernet; on an
    image folder read into memory, and streamed from an ImageNet-layout folder as unnas reads ImageNet."""
    from tests.image_fixtures import write_jpeg_tree, write_tiny_folder

    images = tmp_path / "images"
    if streamed:
        write_jpeg_tree(images, train=12, truncated=False)
        data = ["dataset=imagenet", "dataset.resize=36", "dataset.n_classes=3"]
    else:
        write_tiny_folder(images, per_class={"train": 16, "test": 4})
        data = ["dataset=imagefolder", "dataset.n_classes=2", "dataset.train_subset=0", "dataset.test_subset=0"]
    study = tmp_path / "u"
    args = ["space=darts", "search_budget=unnas", "objective=rotation", "search_budget.width=2", *data,
            f"data_root={images}", "dataset.image_size=32", "workers=1", "threads=1", f"study_dir={study}"]
    done = run_cli("study.search", *args)
    assert done.returncode == 0, done.stderr
    (rec,) = records(study)
    assert rec["dataset"] == ("imagenet" if streamed else "imagefolder")
    again = run_cli("study.search", *args)  # finished: never redone
    assert again.returncode == 0 and records(study) == [rec] and "nothing to do" in again.stdout, again.stdout
    first, second = rec["history"]
    assert rec["status"] == "complete" and len(rec["history"]) == 2
    assert first["arch_loss"] is None and second["arch_loss"] is not None  # alpha frozen in the first epoch
    assert first["lr"] == pytest.approx(0.05) and second["lr"] == pytest.approx(0.025)  # rotation: half of 0.1, cos to 0
    assert rec["net"]["stem"] == "imagenet" and rec["net"]["cells_per_stage"] == 2
