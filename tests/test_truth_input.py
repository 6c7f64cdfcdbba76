"""Crafted truth files (NB-101 TFRecord and its converted CSV, UnNAS summaries): one line naming file and record."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from analysis import nb101_truth as nb
from analysis import unnas
from analysis.truth import TruthError
from study.spaces.nb101.cell import NB101Cell
from tests.test_nb101_truth import CHAIN
from tests.unnas_fixtures import _mask, crc32c_bitwise, nasbench_row, tfrecord, write_summaries


def _refused(call, *words: str) -> str:
    with pytest.raises(TruthError) as e:
        call()
    text = str(e.value)
    assert "\n" not in text and len(text) < 600, text
    for w in words:
        assert w in text, (w, text)
    return text


def _row(**change) -> bytes:
    cell = NB101Cell.from_str(CHAIN)
    fields = json.loads(nasbench_row(cell.canonical(), 108, cell, [(108.0, 0.9, 0.91)], 1000))
    for k, v in change.items():
        fields[int(k[1:])] = v
    return json.dumps(fields).encode()


def _metrics(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_a_huge_crc_valid_length_is_refused_before_reading(tmp_path):
    length = struct.pack("<Q", 2 ** 62)
    path = tmp_path / "huge.tfrecord"
    path.write_bytes(tfrecord([_row()]) + length + struct.pack("<I", _mask(crc32c_bitwise(length))) + b"xx")
    _refused(lambda: nb.convert(path), str(path), "record 1", "cut short")
    length = struct.pack("<Q", 2 ** 64 - 1)
    path.write_bytes(length + struct.pack("<I", _mask(crc32c_bitwise(length))))
    _refused(lambda: nb.convert(path), "record 0")


@pytest.mark.parametrize("change", [
    {"f4": _metrics(b"\x0a\x03\x29\x00\x00")},            # evaluation_data whose double is cut short
    {"f4": _metrics(b"\x0a\x05\x21" + b"\xff" * 4)},     # a varint running off the end
    {"f4": _metrics(b"\x0a\x02\x22\x05")},               # a length field beyond the message
    {"f2": [108]}, {"f2": "abc"}, {"f0": ["hash"]}, {"f0": 5},
    {"f3": 17}, {"f3": None}, {"f1": None}, {"f4": 3},
    {"f4": _metrics(b"\x0a\x09\x09" + struct.pack("<d", 108.0) + b"\x20\x07")},  # accuracy as a varint
    {"f4": _metrics(b"\x0a\x12\x09" + struct.pack("<d", 108.0) + b"\x21" + struct.pack("<d", float("nan")))},
    {"f4": _metrics(b"\x0a\x1b\x09" + struct.pack("<d", 108.0) + b"\x21" + struct.pack("<d", 0.9)
                    + b"\x29" + struct.pack("<d", 7.5))},   # a test accuracy of 750%
])
def test_wrong_field_types_and_cut_protobufs_are_one_line(tmp_path, change):
    path = tmp_path / "odd.tfrecord"
    path.write_bytes(tfrecord([_row(), _row(**change)]))
    _refused(lambda: nb.convert(path), str(path), "record 1")


def test_a_non_numeric_value_in_the_converted_csv_is_one_line(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text(f"{nb.KEY},{nb.TEST},{nb.VALID}\nabc,0.9,0.8\ndef,high,0.7\n")
    _refused(lambda: nb.read(path), str(path), nb.TEST, "high")


@pytest.mark.parametrize("value, words", [
    ("1" + "0" * 400, "min_test_top1"), ("Infinity", "min_test_top1"), ("-500", "min_test_top1"),
    ('"5.0"', "min_test_top1"), ("true", "min_test_top1"), ("[]", "min_test_top1"), ("NaN", "min_test_top1"),
    ("[1, 200.5]", "min_test_top1"), ("null", "min_test_top1"),
])
def test_odd_min_test_top1_values_are_refused_naming_the_job(tmp_path, value, words):
    write_summaries(tmp_path, "nb101", n=4, drop=False)
    file = tmp_path / "summaries" / "nas_bench" / "cifar10" / "rot" / "2" / "sweep_summary.json"
    jobs = json.loads(file.read_text())["job_summaries"]
    text = json.dumps({"job_summaries": jobs}).replace(json.dumps(jobs[2]["min_test_top1"]), '"@"', 1)
    file.write_text(text.replace('"@"', value))
    _refused(lambda: unnas.read_summaries(tmp_path, "nb101"), str(file), "job 2", words)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"job_summaries": 5}',
                                  '{"job_summaries": [' + "[" * 100_000 + "]" * 100_000 + "]}"])
def test_deeply_nested_or_odd_summaries_are_one_line(tmp_path, text):
    write_summaries(tmp_path, "darts", n=3, drop=False)
    file = tmp_path / "summaries" / "darts" / "cifar10" / "cls" / "1" / "sweep_summary.json"
    file.write_text(text)
    _refused(lambda: unnas.read_summaries(tmp_path, "darts"), str(file))
