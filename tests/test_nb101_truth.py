"""truth=nb101:PATH: NAS-Bench-101's data file read without TensorFlow from a tiny file in exactly its framing
(CRC-checked TFRecord, JSON rows, base64 ModelMetrics protobuf), converted once and joined by canonical key."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pandas as pd
import pytest

from analysis import nb101_truth as nb
from analysis.correlate import Request, analyse
from analysis.truth import TruthError
from study.spaces.nb101.cell import NB101Cell
from study.store.cells import read_cells
from study.store.records import run_dir, write_atomic
from tests.test_cell_lists import INCEPTION, sample
from tests.unnas_fixtures import crc32c_bitwise, nasbench_row, tfrecord

CHAIN = "0100|0010|0001|0000:input,conv3x3-bn-relu,maxpool3x3,output"
SKIPPY = "0110|0001|0001|0000:input,conv1x1-bn-relu,conv3x3-bn-relu,output"
# (valid, test) at epoch 108 for each repeat; the halfway checkpoint (54) must be ignored.
RUNS = {INCEPTION: [(0.90, 0.89), (0.92, 0.91), (0.94, 0.93)], CHAIN: [(0.80, 0.79), (0.82, 0.83), (0.84, 0.81)],
        SKIPPY: [(0.70, 0.71)]}


def rows(runs=RUNS, hashes=None) -> list[bytes]:
    """The data file's payloads for `runs`: per repeat, evaluations at epochs 0, 54 and 108."""
    out = []
    for arch, repeats in runs.items():
        cell = NB101Cell.from_str(arch)
        key = (hashes or {}).get(arch, cell.canonical())
        for valid, test in repeats:
            evaluations = [(0.0, 0.1, 0.1), (54.0, valid - 0.2, test - 0.2), (108.0, valid, test)]
            out.append(nasbench_row(key, 108, cell, evaluations, params=1000 + len(arch)))
    out.append(nasbench_row(NB101Cell.from_str(CHAIN).canonical(), 12, NB101Cell.from_str(CHAIN),
                            [(12.0, 0.5, 0.5)], 1))  # another epoch budget: not the 108-epoch truth
    return out


@pytest.fixture
def datafile(tmp_path):
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(tfrecord(rows()))
    return path


def test_crc32c_matches_the_definition_and_the_standard_check_value():
    assert int(nb.crc32c([b"123456789"])[0]) == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(int(n)) for n in rng.integers(0, 300, size=40)] + [b""]
    assert [int(c) for c in nb.crc32c(blobs)] == [crc32c_bitwise(b) for b in blobs]


def test_the_conversion_gives_mean_and_sd_of_the_108_epoch_runs_per_hash(datafile):
    table = nb.convert(datafile).set_index(nb.KEY)
    assert len(table) == 3 and set(table.index) == {NB101Cell.from_str(a).canonical() for a in RUNS}
    for arch, repeats in RUNS.items():
        row = table.loc[NB101Cell.from_str(arch).canonical()]
        valid, test = np.array(repeats).T
        assert row["repeats"] == len(repeats) and row["params"] == 1000 + len(arch)
        assert row[nb.TEST] == pytest.approx(test.mean()) and row[nb.VALID] == pytest.approx(valid.mean())
        if len(repeats) > 1:
            assert row[f"{nb.TEST}-sd"] == pytest.approx(test.std(ddof=1))
        else:
            assert np.isnan(row[f"{nb.TEST}-sd"])


def test_the_converted_table_and_the_data_file_give_one_truth(datafile, tmp_path):
    out = tmp_path / "nb101-truth.csv.gz"
    assert nb.main([str(datafile), str(out)]) == 0
    converted, direct = nb.read(out), nb.read(datafile)
    assert converted.key == direct.key == "canonical" and converted.columns == [nb.TEST, nb.VALID]
    pd.testing.assert_frame_equal(converted.table.sort_index(), direct.table.sort_index(), atol=1e-6)
    first = out.read_bytes()
    assert nb.main([str(datafile), str(out)]) == 0 and out.read_bytes() == first  # no timestamp in the gzip


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "fails its payload CRC"),
    (lambda b: bytes([b[0] ^ 1]) + b[1:], "fails its length CRC"),
    (lambda b: b[:-3], "cut short"),
])
def test_a_damaged_file_is_refused_naming_the_record(tmp_path, damage, words):
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(damage(tfrecord(rows())))
    with pytest.raises(TruthError, match=words):
        nb.convert(path)


def test_a_file_whose_hashes_this_project_does_not_reproduce_is_refused(tmp_path):
    path = tmp_path / "other.tfrecord"
    path.write_bytes(tfrecord(rows(hashes={CHAIN: "0" * 32})))
    with pytest.raises(TruthError, match="would not join"):
        nb.convert(path)


def test_the_command_fails_in_one_line(tmp_path, capsys):
    assert nb.main([str(tmp_path / "absent.tfrecord"), str(tmp_path / "t.csv.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and not (tmp_path / "t.csv.gz").exists()


def test_an_nb101_study_is_judged_against_the_benchmark_by_canonical_key(datafile, tmp_path):
    cells = tmp_path / "cells.txt"
    # The chain written with a dead-end vertex (3 -> nothing): pruned, it is the chain, so it has its hash.
    dead_end = "01000|00110|00001|00000|00000:input,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,output"
    assert NB101Cell.from_str(dead_end).canonical() == NB101Cell.from_str(CHAIN).canonical()
    cells.write_text(f"{INCEPTION}\n{dead_end}\n{SKIPPY}\n")
    study = tmp_path / "s"
    sample(study, "space=nb101", f"cells={cells}")
    truth = nb.read(datafile)
    for row in read_cells(study):  # supervised ranks the cells exactly as the benchmark's test accuracy
        acc = float(truth.table.loc[row["canonical"], nb.TEST])
        rec = {"cell_id": row["id"], "arch": row["arch"], "objective": "supervised", "seed": 0, "space": "nb101",
               "dataset": "digits", "budget": "tiny", "identity": "i", "status": "complete",
               "test_acc_best": acc / 2, "test_acc_final": acc / 2}
        write_atomic(run_dir(study, "supervised", "digits", "tiny", "i", 0) / f"{row['id']}.json", json.dumps(rec))
    results, _, table = analyse(Request(study, "supervised", "best", "mean", None, None,
                                        truth=f"nb101:{datafile}", bootstrap=20, permutations=20, trials=10))
    row = results.truth[(results.truth["objective"] == "supervised") & (results.truth["reference"] == nb.TEST)]
    assert row["spearman"].iloc[0] == pytest.approx(1.0) and row["n_cells"].iloc[0] == 3
    assert table[nb.TEST].notna().all()  # every cell found by its hash, the unpruned one too


def test_crc_batches_longer_than_one_batch_stay_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(nb, "_BATCH", 2)
    payloads = [os.urandom(k) for k in (5, 0, 17, 3, 9)]
    path = tmp_path / "f.tfrecord"
    path.write_bytes(tfrecord(payloads))
    assert list(nb.records(path)) == payloads
    framed = bytearray(path.read_bytes())
    framed[-1] ^= 0xFF  # the last record's payload CRC: found in the last, partial batch
    path.write_bytes(bytes(framed))
    with pytest.raises(TruthError, match="record 4 fails its payload CRC"):
        list(nb.records(path))
    assert struct.calcsize("<QI") == 12
