"""Claims: one owner per run, heartbeats, stale claims taken over, stale workers never write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from study.store.claims import ClaimSettings, acquire, claim_path, claimed, is_stale, read_owner
from study.store.records import NotOwner, read_record, write_guard, write_record

FAST = ClaimSettings(heartbeat_s=0.02, stale_after_s=60)


def _foreign_claim(record, host="elsewhere", pid=1, age_s=0.0):
    """A claim file written by some other worker, its heartbeat `age_s` seconds old."""
    path = claim_path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "f0reign", "started_at": "then"}))
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


SMALL_DATA = {"image_size": 8, "test_fraction": 0.9}  # 180 training images: a run trains in about a second
ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"]


def small_runs(study_dir, lr=0.1, epochs=1):
    """Real run specs of two cells on a small digits split, with their setup and loaded data."""
    from study.data import build_dataset
    from study.training.run import RunSpec, Setup
    from study.store.records import identity_hash, run_dir
    from study.spaces import NetShape, cell_id
    from study.spaces.nb201 import NB201Cell
    from study.training.run import Budget

    budget = Budget(name="tiny", epochs=epochs, batch_size=64, lr=lr)
    shape = NetShape(c_in=1, image_size=SMALL_DATA["image_size"], n_classes=10, width=4, cells_per_stage=1)
    setup = Setup(space="nb201", objective="supervised", objective_options={"crop_padding": 2}, dataset="digits",
                  dataset_options=SMALL_DATA, budget=budget, shape=shape, device="cpu", threads=1, claims=FAST)
    folder = run_dir(study_dir, "supervised", "digits", "tiny", identity_hash(setup.identity()), 0)
    specs = []
    for arch in ARCHS:
        cid = cell_id(NB201Cell.from_str(arch).canonical())
        specs.append(RunSpec(cid, arch, "supervised", 0, folder / f"{cid}.json"))
    torch.set_num_threads(1)  # as a worker does; oversubscribed cores make torch threads crawl
    return specs, setup, build_dataset("digits", **SMALL_DATA)


def _poll(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_one_owner_at_a_time_and_release_frees_the_run(tmp_path):
    record = tmp_path / "seed0" / "abc.json"
    with claimed(record, FAST) as first:
        assert first is not None and first.held()
        owner = read_owner(claim_path(record))
        assert owner["pid"] == os.getpid() and owner["token"] == first.token and owner["host"]
        assert acquire(record, FAST) is None  # a live owner (this very process) holds it
    assert not claim_path(record).exists()
    with claimed(record, FAST) as again:
        assert again is not None and again.token != first.token


def test_heartbeat_refreshes_the_claim(tmp_path):
    record = tmp_path / "r.json"
    with claimed(record, FAST) as claim:
        os.utime(claim.path, (0, 0))  # as if silent since 1970
        assert _poll(lambda: claim.path.stat().st_mtime > 0)


@pytest.mark.parametrize("age_s,stale", [(0, False), (120, True)])
def test_a_silent_remote_claim_is_taken_over_after_the_timeout(tmp_path, caplog, age_s, stale):
    record = tmp_path / "r.json"
    _foreign_claim(record, age_s=age_s)
    claim = acquire(record, FAST)
    assert (claim is not None) == stale
    if stale:
        assert read_owner(claim.path)["token"] == claim.token and "taking over stale claim" in caplog.text
        claim.release()
    else:
        assert read_owner(claim_path(record))["token"] == "f0reign"


def test_a_claim_of_a_dead_local_process_is_stale_at_once(tmp_path):
    import socket

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)  # exited and reaped: no such process any more
    record = tmp_path / "r.json"
    path = _foreign_claim(record, host=socket.gethostname(), pid=dead_pid)
    assert is_stale(path, read_owner(path), FAST)
    path = _foreign_claim(record, host=socket.gethostname(), pid=os.getpid())
    assert not is_stale(path, read_owner(path), FAST)


def test_a_dead_workers_half_written_record_and_checkpoint_go_with_its_claim(tmp_path):
    # A worker killed while saving (a stop signal to the group, the OOM killer) leaves `.<cell>.ckpt.*.tmp`
    # or `.<cell>.json.*.tmp`; the parent that drops its claim removes both, and nothing of another cell.
    import socket

    from study.store.claims import drop_dead

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    record = tmp_path / "4339f0cf51.json"
    _foreign_claim(record, host=socket.gethostname(), pid=dead_pid)
    left = [tmp_path / ".4339f0cf51.ckpt.3ur7km9e.tmp", tmp_path / ".4339f0cf51.json.x1y2z3.tmp"]
    others = [tmp_path / ".4339f0cf5.ckpt.a.tmp", tmp_path / ".4339f0cf51x.json.b.tmp", tmp_path / "4339f0cf51.ckpt"]
    for path in left + others:
        path.write_bytes(b"half")
    assert drop_dead([record], {dead_pid}) == [record]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in others)


def test_an_owner_stopped_mid_write_leaves_no_temporary_file_when_it_lets_go(tmp_path):
    # A stop signal's SystemExit can land inside tempfile.mkstemp, after the file exists and before its
    # name reaches the writer's cleanup: the owner removes such files before it releases the claim.
    record = tmp_path / "4339f0cf51.json"
    with pytest.raises(SystemExit):
        with claimed(record, FAST) as claim:
            assert claim is not None
            (tmp_path / ".4339f0cf51.ckpt.3ur7km9e.tmp").write_bytes(b"half")
            raise SystemExit(143)
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_claim_is_stale(tmp_path):
    record = tmp_path / "r.json"
    claim_path(record).write_text("")
    claim = acquire(record, FAST)
    assert claim is not None
    claim.release()


def test_racing_takeovers_of_one_stale_claim_leave_exactly_one_owner(tmp_path):
    for round_ in range(15):
        record = tmp_path / f"r{round_}.json"
        _foreign_claim(record, age_s=3600)
        won, start = [], threading.Barrier(6)

        def contend():
            start.wait()
            claim = acquire(record, FAST)
            if claim is not None:
                won.append(claim)

        threads = [threading.Thread(target=contend) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, round_
        assert read_owner(claim_path(record))["token"] == won[0].token
        won[0].release()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert leftovers == []


def test_a_worker_whose_claim_was_taken_over_writes_nothing(tmp_path):
    record = tmp_path / "r.json"
    with claimed(record, FAST) as claim:
        with write_guard(claim.owns, {"claim": claim.owner}):
            write_record(record, {"status": "failed", "cell_id": "x", "reason": "first"})
            assert read_record(record)["claim"]["token"] == claim.token
            _foreign_claim(record)  # another worker judged us stale and took over
            with pytest.raises(NotOwner):
                write_record(record, {"status": "complete", "cell_id": "x", "test_acc_best": 1.0})
        assert read_record(record)["reason"] == "first"
    assert read_owner(claim_path(record))["token"] == "f0reign"  # release leaves the new owner's claim alone


def test_run_safely_skips_runs_held_elsewhere_and_stays_silent_after_losing_its_claim(tmp_path):
    from study.training.jobs import run_claimed
    from study.training.runner import Runs

    def run_safely(spec, setup, data):
        return run_claimed([spec], setup, data, Runs)[0]

    specs, setup, data = small_runs(tmp_path)
    spec = specs[0]
    _foreign_claim(spec.path, age_s=0)
    assert run_safely(spec, setup, data) == {"status": "skipped", "cell_id": spec.cell_id, "seed": spec.seed,
                                             "reason": "in progress elsewhere"}
    claim_path(spec.path).unlink()

    # Take the claim away while the run trains, as a worker that judged it stale would.
    stolen = threading.Event()

    def steal():
        if _poll(lambda: claim_path(spec.path).exists()):
            _foreign_claim(spec.path)
            stolen.set()

    thief = threading.Thread(target=steal)
    thief.start()
    result = run_safely(spec, setup, data)
    thief.join()
    assert stolen.is_set() and result["reason"] == "claim taken over"
    assert not spec.path.exists()
    # The run itself trains and writes once its claim is free again.
    claim_path(spec.path).unlink()
    rec = run_safely(spec, setup, data)
    assert rec["status"] == "complete" and read_record(spec.path)["claim"]["pid"] == os.getpid()
    assert run_safely(spec, setup, data)["reason"] == "finished elsewhere"


def test_an_owner_that_wakes_after_a_takeover_saves_no_checkpoint_beside_the_finished_record(tmp_path):
    from study.store.records import identity_hash
    from study.training.checkpoint import path_for
    from study.training.jobs import run_claimed
    from study.training.runner import Runs

    def run_safely(spec, setup, data):
        return run_claimed([spec], setup, data, Runs)[0]

    specs, setup, data = small_runs(tmp_path, epochs=6)
    spec = specs[0]
    ckpt = path_for(spec.path)
    finished = threading.Event()

    def take_over_and_finish():
        # Another worker judged this owner stale (it was paused, say), took the run over and finished it.
        if _poll(ckpt.exists, timeout=120):
            _foreign_claim(spec.path)
            write_record(spec.path, {"status": "complete", "cell_id": spec.cell_id, "test_acc_best": 0.5,
                                     "identity": identity_hash(setup.identity())})
            ckpt.unlink()
            finished.set()

    other = threading.Thread(target=take_over_and_finish)
    other.start()
    result = run_safely(spec, setup, data)  # the old owner goes on with its epochs
    other.join()
    assert finished.is_set() and result["reason"] == "claim taken over"
    assert not ckpt.exists(), "the old owner wrote a checkpoint of a run that is finished"
    assert read_record(spec.path)["test_acc_best"] == 0.5
