"""NAS-Bench-101's own results as ground truth, read from its data file without TensorFlow.

    python -m analysis.nb101_truth nasbench_only108.tfrecord nb101-truth.csv.gz   # once, about 499 MB in
    python -m analysis.correlate truth=nb101:nb101-truth.csv.gz                    # any nb101 study

The benchmark (Ying et al., ICML 2019; google-research/nasbench, Apache-2.0) ships its results as a
TFRecord file: records framed as (uint64 length, uint32 masked CRC-32C of the length, payload, uint32
masked CRC-32C of the payload), little-endian. Each payload is the JSON list
`[module_hash, epochs, adjacency, ops, metrics]`: the adjacency matrix as a row-major 0/1 string, the ops
comma-separated, and `metrics` a base64 `ModelMetrics` protobuf whose `evaluation_data` (field 1) holds
per-checkpoint `current_epoch` (1), `validation_accuracy` (4) and `test_accuracy` (5) as doubles, and whose
field 2 is the parameter count. Each cell was trained three times at 108 epochs; the truth of a cell is
the mean (and sample SD) over its repeats of the accuracies at the last checkpoint (epoch 108), as fractions.

Rows are keyed by the module hash, which is this project's canonical NB-101 key (study/spaces/nb101/cell.py
reproduces it; the conversion checks that on the file's first cells), so `truth=` joins a study by
`canonical`. Columns: `nb101-cifar10` (test accuracy) and `nb101-cifar10-valid` (validation accuracy);
the converted file adds their `-sd`, the number of `repeats` and `params`.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    from study.commands.entry import start

    start("analysis.nb101_truth")

import argparse
import base64
import gzip
import json
import logging
import math
import os
import struct
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from analysis.truth import Truth, TruthError, numeric_measures
from study.spaces.base import SpaceError
from study.spaces.nb101.cell import NB101Cell

log = logging.getLogger(__name__)

TEST, VALID = "nb101-cifar10", "nb101-cifar10-valid"
MEASURES = (TEST, VALID)
KEY = "nb101_hash"
_CHECKED = 100  # cells whose hash is recomputed from their graph during a conversion
_BATCH = 1 << 16  # payloads whose CRCs are computed together


def _crc_table() -> np.ndarray:
    """The byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


CRC_TABLE = _crc_table()
_TABLE = [int(x) for x in CRC_TABLE]


def _masked_crc_of_length(head: bytes) -> int:
    """The masked CRC-32C of an 8-byte length field, one record at a time (checked before trusting it)."""
    crc = 0xFFFFFFFF
    for byte in head:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def crc32c(payloads: list[bytes]) -> np.ndarray:
    """CRC-32C of each byte string, computed for all of them at once, one byte position per step."""
    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    width = int(lengths.max()) if len(payloads) else 0
    data = np.zeros((len(payloads), width), dtype=np.uint8)  # (N, L) zero-padded
    for i, p in enumerate(payloads):
        data[i, : len(p)] = np.frombuffer(p, dtype=np.uint8)
    crc = np.full(len(payloads), 0xFFFFFFFF, dtype=np.uint32)
    for j in range(width):
        stepped = CRC_TABLE[(crc ^ data[:, j]) & 0xFF] ^ (crc >> 8)
        crc = np.where(j < lengths, stepped, crc)  # a payload shorter than j is finished
    return crc ^ np.uint32(0xFFFFFFFF)


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8 (mod 2**32)."""
    crc = crc.astype(np.uint64)
    rotated = ((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(0xFFFFFFFF)
    return ((rotated + np.uint64(0xA282EAD8)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _damaged(path: Path, record: int, what: str) -> TruthError:
    return TruthError(f"{path}: record {record} fails its {what} CRC; the file is damaged or not a TFRecord file: "
                      "download nasbench_only108.tfrecord again")


def _check(path: Path, payloads: list[bytes], crcs: list[int], first: int) -> None:
    """Refuse the batch if any payload's CRC differs from the one framed with it."""
    wrong = np.flatnonzero(masked(crc32c(payloads)) != np.array(crcs, dtype=np.uint32))
    if wrong.size:
        raise _damaged(path, first + int(wrong[0]), "payload")


def records(path: Path, verify: bool = True) -> Iterator[bytes]:
    """The payloads of a TFRecord file, in order, every CRC checked when `verify`.

    A length's CRC is checked before the length is used (a damaged length would misframe every later
    record); payload CRCs are checked a batch at a time, before the batch is handed on.
    """
    payloads: list[bytes] = []
    crcs: list[int] = []
    count = 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while True:
            head = f.read(12)
            if not head:
                break
            if len(head) < 12:
                raise TruthError(f"{path}: record {count} is cut short in its header; the file is truncated")
            (length,), (length_crc,) = struct.unpack("<Q", head[:8]), struct.unpack("<I", head[8:])
            if verify and _masked_crc_of_length(head[:8]) != length_crc:
                raise _damaged(path, count, "length")
            if length + 4 > size - f.tell():  # a length beyond the file is not read (it may ask for exabytes)
                raise TruthError(f"{path}: record {count} is cut short (its length field says {length} bytes, "
                                 f"{max(0, size - f.tell() - 4)} remain); the file is truncated or damaged")
            body = f.read(length + 4)
            if len(body) < length + 4:
                raise TruthError(f"{path}: record {count} is cut short ({len(body)} of {length + 4} bytes); "
                                 "the file is truncated")
            payloads.append(body[:length])
            crcs.append(struct.unpack("<I", body[length:])[0])
            count += 1
            if len(payloads) == _BATCH:
                if verify:
                    _check(path, payloads, crcs, count - len(payloads))
                yield from payloads
                payloads, crcs = [], []
    if payloads:
        if verify:
            _check(path, payloads, crcs, count - len(payloads))
        yield from payloads


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("a protobuf varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(buf: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields by number: ints (varint), floats (fixed64 as double) or bytes (length).

    ValueError for a message cut short or of a wire type protobuf does not have.
    """
    out: dict[int, list[Any]] = defaultdict(list)
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            fmt = "<d" if wire == 1 else "<f"
            if pos + struct.calcsize(fmt) > len(buf):
                raise ValueError(f"field {number} is cut short")
            value, pos = struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError(f"field {number} is longer than its message")
            value, pos = buf[pos: pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out[number].append(value)
    return out


def _accuracy(evaluation: dict[int, list[Any]], number: int, name: str) -> float:
    values = evaluation.get(number, [])
    if not values or not isinstance(values[0], float) or not 0.0 <= values[0] <= 1.0:  # NaN fails the range too
        raise ValueError(f"{name} {values[0] if values else 'missing'!r} is not a fraction from 0 to 1")
    return values[0]


def final_accuracies(metrics: bytes) -> tuple[float, float, int]:
    """(validation, test) accuracy at the last checkpoint of a ModelMetrics, and its parameter count."""
    message = fields(metrics)
    evaluations = [fields(e) for e in message[1] if isinstance(e, bytes)]
    if not evaluations or len(evaluations) != len(message[1]):
        raise ValueError("no evaluation_data" if not evaluations else "evaluation_data that is not a message")
    epochs = [e.get(1, [0.0])[0] for e in evaluations]
    if not all(isinstance(x, float) and math.isfinite(x) for x in epochs):
        raise ValueError("a current_epoch that is not a number")
    last = evaluations[epochs.index(max(epochs))]  # the latest current_epoch
    params = message.get(2, [0])[0]
    if not isinstance(params, int):
        raise ValueError(f"a parameter count {params!r} that is not an integer")
    return _accuracy(last, 4, "validation_accuracy"), _accuracy(last, 5, "test_accuracy"), params


def _row(payload: bytes, epochs: int) -> tuple[str, str, str, float, float, int] | None:
    """(hash, adjacency, ops, validation, test, params) of one payload; None for a run at other epochs."""
    row = json.loads(payload.decode("utf-8"))
    if not isinstance(row, list) or len(row) != 5:
        raise ValueError("not a JSON list of 5 fields")
    module_hash, run_epochs, adjacency, ops, metrics = row
    if isinstance(run_epochs, bool) or not isinstance(run_epochs, int):
        raise ValueError(f"epochs {run_epochs!r} is not an integer")
    if run_epochs != epochs:
        return None
    for name, value in (("module hash", module_hash), ("adjacency", adjacency), ("ops", ops), ("metrics", metrics)):
        if not isinstance(value, str):
            raise ValueError(f"its {name} is a {type(value).__name__}, not a string")
    n = int(round(len(adjacency) ** 0.5))
    if n * n != len(adjacency) or set(adjacency) - {"0", "1"}:
        raise ValueError(f"adjacency {adjacency[:60]!r} is not a square 0/1 matrix")
    valid, test, n_params = final_accuracies(base64.b64decode(metrics, validate=True))
    return module_hash, adjacency, ops, valid, test, n_params


def convert(path: str | Path, epochs: int = 108, verify: bool = True) -> pd.DataFrame:
    """The truth table of a NAS-Bench-101 data file: mean and SD per module hash of the runs at `epochs`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TruthError(f"NAS-Bench-101 data file {str(path)!r} does not exist; give nasbench_only108.tfrecord "
                         "(google-research/nasbench)")
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    params: dict[str, int] = {}
    checked = 0
    for k, payload in enumerate(records(path, verify)):
        try:
            row = _row(payload, epochs)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSON and base64 errors are ValueErrors
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise TruthError(f"{path}: record {k} is not a NAS-Bench-101 row ({why}); download "
                             "nasbench_only108.tfrecord again") from None
        if row is None:
            continue
        module_hash, adjacency, ops, valid, test, n_params = row
        if module_hash not in params and checked < _CHECKED:
            _check_hash(path, module_hash, adjacency, ops)
            checked += 1
        runs[module_hash].append((valid, test))
        params[module_hash] = n_params
    if not runs:
        raise TruthError(f"{path} holds no run at {epochs} epochs; give nasbench_only108.tfrecord")
    rows = []
    for module_hash, values in runs.items():
        v = np.array(values)  # (repeats, [valid, test])
        sd = v.std(axis=0, ddof=1) if len(v) > 1 else np.full(2, np.nan)
        rows.append((module_hash, v[:, 1].mean(), sd[1], v[:, 0].mean(), sd[0], len(v), params[module_hash]))
    return pd.DataFrame(rows, columns=[KEY, TEST, f"{TEST}-sd", VALID, f"{VALID}-sd", "repeats", "params"])


def _check_hash(path: Path, module_hash: str, adjacency: str, ops: str) -> None:
    """Refuse a file whose hashes this project's canonical key does not reproduce (joins would fail)."""
    n = int(round(len(adjacency) ** 0.5))  # a square 0/1 string, checked by _row
    try:
        cell = NB101Cell.from_lists([[int(c) for c in adjacency[i * n:(i + 1) * n]] for i in range(n)], ops.split(","))
    except SpaceError as e:
        raise TruthError(f"{path}: cell {module_hash} is not a valid NAS-Bench-101 module ({e})") from None
    if cell.canonical() != module_hash:
        raise TruthError(f"{path}: cell {module_hash} hashes to {cell.canonical()} here; this file's keys would not "
                         "join a study (is it NAS-Bench-101's nasbench_only108.tfrecord?)")


def read(path: str | Path, space: str | None = None) -> Truth:
    """`truth=nb101:PATH`: the converted table (.csv or .csv.gz) or the .tfrecord itself (converted now)."""
    path = Path(path).expanduser()
    if path.name.endswith((".csv", ".csv.gz")):
        try:
            table = pd.read_csv(path, dtype={KEY: str})
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise TruthError(f"NAS-Bench-101 truth {str(path)!r} cannot be read ({type(e).__name__}); convert the "
                             "data file with python -m analysis.nb101_truth IN.tfrecord OUT.csv.gz") from None
        if KEY not in table.columns or not set(MEASURES) <= set(table.columns):
            raise TruthError(f"{path} is not a converted NAS-Bench-101 truth (needs {KEY}, {', '.join(MEASURES)}); "
                             "convert the data file with python -m analysis.nb101_truth IN.tfrecord OUT.csv.gz")
        numeric_measures(table, list(MEASURES), KEY, f"NAS-Bench-101 truth {str(path)!r}", "convert the data "
                         "file again with python -m analysis.nb101_truth IN.tfrecord OUT.csv.gz")
    else:
        log.info("converting %s (a few minutes for the full file; convert it once with "
                 "python -m analysis.nb101_truth)", path)
        table = convert(path)
    return Truth(f"NAS-Bench-101 ({path.name}; 108 epochs, mean over repeats)",
                 table.set_index(KEY)[list(MEASURES)].astype(float), key="canonical")


def write(table: pd.DataFrame, out: Path) -> None:
    """Write the converted table as CSV (gzipped when `out` ends in .gz, without a timestamp), atomically."""
    text = table.to_csv(index=False, float_format="%.6f").encode()
    data = gzip.compress(text, mtime=0) if out.name.endswith(".gz") else text
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.nb101_truth IN.tfrecord OUT.csv.gz`; one line and exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m analysis.nb101_truth",
                                     description="NAS-Bench-101's data file -> a truth table for truth=nb101:OUT")
    parser.add_argument("tfrecord", type=Path, help="nasbench_only108.tfrecord (google-research/nasbench)")
    parser.add_argument("out", type=Path, help="the table to write, e.g. nb101-truth.csv.gz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        table = convert(args.tfrecord)
        write(table, args.out)
    except (TruthError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("wrote %d cells (%d runs) to %s; use truth=nb101:%s", len(table), int(table["repeats"].sum()),
             args.out, args.out)
    return 0

