"""Small files in the layouts of the UnNAS summaries and of NAS-Bench-101's data file, written from scratch.

`write_summaries` lays out summaries/{darts,nas_bench}/{cifar10,imagenet}/{cls,rot,col,jig}/<seed>/
sweep_summary.json for some of the paper's cells, with planted rank correlations: every column's seed mean
is a latent quality mixed with independent noise so that its Spearman rho with ImageNet supervised
accuracy is about the planted value. It returns the planted accuracies (percent, seed means) so a test can
compute what a reader must find. `tfrecord` frames payloads as TFRecord does, with a bitwise CRC-32C that
shares no code with the reader's.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from study.spaces import get_space
from study.spaces.darts.cell import DartsCell
from study.spaces.lists import named_lists, read_list

FOLDERS = {"darts": "darts", "nb101": "nas_bench"}
# Fig. 4's rho: ImageNet supervised against CIFAR-10 rot, col, jig, cls.
FIG4 = {"darts": {"rot": 0.82, "col": 0.77, "jig": 0.87, "cls": 0.90},
        "nb101": {"rot": 0.74, "col": 0.69, "jig": 0.79, "cls": 0.80}}
LEVELS = {"cls": (92.0, 0.8), "rot": (93.5, 0.5), "col": (30.6, 0.08), "jig": (75.0, 1.5)}  # percent: mean, SD


def paper_cells(space: str, n: int) -> list[tuple[str, object]]:
    """The first n of the paper's cells: (paper ID, cell)."""
    listed = read_list(get_space(space), named_lists(space)["unnas"])[:n]
    return [(e.extra["paper_id"], e.cell) for e in listed]


def _job(space: str, pid: str, cell: object, error: float, k: int) -> dict:
    job = {"job_id": int(pid), "min_test_top1": [error + 3.0, error + 1.0, error]}  # the last entry is the run's
    if space == "darts":
        assert isinstance(cell, DartsCell)
        flat = lambda nodes: [[op, src] for node in nodes for op, src in node]  # noqa: E731
        job["job_id"] = k  # the reader keys DARTS by genotype, never by job id
        job["net"] = {"genotype": {"normal": flat(cell.normal), "normal_concat": [2, 3, 4, 5],
                                   "reduce": flat(cell.reduce), "reduce_concat": [2, 3, 4, 5]}}
    return job


def write_summaries(root: Path, space: str, n: int = 60, rhos: dict[str, float] | None = None, seed: int = 0,
                    drop: bool = True) -> dict[str, dict[str, float]]:
    """Write the summaries of `n` paper cells under root/summaries; returns column -> paper ID -> accuracy %.

    CIFAR-10 has seeds 1, 2, 3 and ImageNet seed 1, as in the paper. With `drop`, the first cell is missing
    from seed 3 of cifar10/rot, so it has no unnas-cifar10-rot value (the every-seed rule).
    """
    rng = np.random.default_rng(seed)
    cells = paper_cells(space, n)
    rhos = rhos or FIG4[space]
    quality = rng.standard_normal(n)
    planted: dict[str, dict[str, float]] = {}
    columns = [("imagenet", "cls", 1.0), *[("cifar10", t, rhos[t]) for t in ("rot", "col", "jig", "cls")]]
    for dataset, task, rho in columns:
        r = 2 * math.sin(math.pi * rho / 6)  # Pearson r of a normal pair whose Spearman rho is `rho`
        latent = r * quality + math.sqrt(max(0.0, 1 - r * r)) * rng.standard_normal(n)
        mean, sd = (40.0, 3.0) if dataset == "imagenet" else LEVELS[task]
        acc = mean + sd * latent
        seeds = (1,) if dataset == "imagenet" else (1, 2, 3)
        offsets = rng.normal(0, 0.01 * sd, size=(len(seeds), n))
        offsets -= offsets.mean(axis=0)  # the seed mean is exactly `acc`
        for s, offset in zip(seeds, offsets):
            jobs = [_job(space, pid, cell, 100.0 - (acc[k] + offset[k]), k) for k, (pid, cell) in enumerate(cells)]
            if drop and (dataset, task, s) == ("cifar10", "rot", 3):
                jobs = jobs[1:]
            order = rng.permutation(len(jobs))  # files list jobs in any order
            folder = root / "summaries" / FOLDERS[space] / dataset / task / str(s)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "sweep_summary.json").write_text(json.dumps({"job_summaries": [jobs[i] for i in order]}))
        planted[f"unnas-{dataset}-{task}"] = {pid: float(a) for (pid, _), a in zip(cells, acc)}
    if drop:
        del planted["unnas-cifar10-rot"][cells[0][0]]
    return planted


def zip_folder(folder: Path, out: Path) -> Path:
    """Zip `folder`'s summaries/ as the release does (summaries/ at the top of the archive)."""
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted((folder / "summaries").rglob("*")):
            zf.write(path, path.relative_to(folder).as_posix())
    return out


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C one bit at a time (the definition, not the reader's table)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(payloads: list[bytes]) -> bytes:
    """TFRecord framing: uint64 length, masked CRC of the length, payload, masked CRC of the payload."""
    out = b""
    for p in payloads:
        length = struct.pack("<Q", len(p))
        out += length + struct.pack("<I", _mask(crc32c_bitwise(length))) + p
        out += struct.pack("<I", _mask(crc32c_bitwise(p)))
    return out


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", value)


def model_metrics(evaluations: list[tuple[float, float, float]], params: int) -> bytes:
    """A ModelMetrics protobuf: evaluation_data (epoch, validation, test accuracy), trainable_parameters."""
    out = b""
    for epoch, valid, test in evaluations:
        body = (_double(1, epoch) + _double(2, 10.0 * epoch) + _double(3, 0.99) + _double(4, valid)
                + _double(5, test) + _varint(6 << 3 | 2) + _varint(4) + b"ckpt")
        out += _varint(1 << 3 | 2) + _varint(len(body)) + body
    return out + _varint(2 << 3 | 0) + _varint(params) + _double(3, 123.0)


def nasbench_row(module_hash: str, epochs: int, cell: object, evaluations: list, params: int) -> bytes:
    """One payload: the JSON list [hash, epochs, adjacency, ops, base64 metrics]."""
    adjacency = "".join(str(x) for row in cell.matrix for x in row)
    metrics = base64.b64encode(model_metrics(evaluations, params)).decode()
    return json.dumps([module_hash, epochs, adjacency, ",".join(cell.ops), metrics]).encode()


def gz(path: Path) -> bytes:
    """A gzipped file's text bytes."""
    return gzip.decompress(path.read_bytes())
