"""How long converting NAS-Bench-101's data file takes here (analysis/nb101_truth.py), without the file.

    OMP_NUM_THREADS=1 python benchmarks/nb101_truth.py --copies 40

Writes a synthetic data file in exactly the benchmark's framing: the paper's 500 NAS-Bench-101 cells, 3
repeats each, each payload a JSON row with a base64 ModelMetrics of 3 checkpoints (records of about the
real file's 393 bytes on average: 499 MB over 1,270,872 records), repeated --copies times; then times the
conversion (CRC checks included) on one thread and projects it to the real file's record count. Results:
benchmarks/results/nb101_truth.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REAL_RECORDS, REAL_BYTES = 423_624 * 3, 499 * 2**20  # nasbench_only108.tfrecord
OUT = Path(__file__).resolve().parent / "results" / "nb101_truth.md"


def main() -> None:
    """Write, convert, report."""
    from analysis import nb101_truth
    from study.spaces import get_space
    from study.spaces.lists import named_lists, read_list
    from tests.unnas_fixtures import nasbench_row, tfrecord

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cells = [e.cell for e in read_list(get_space("nb101"), named_lists("nb101")["unnas"])]
    payloads = [nasbench_row(c.canonical(), 108, c, [(0.0, 0.1, 0.1), (54.0, 0.8, 0.8), (108.0, 0.9 + r / 100,
                                                                                        0.9 - r / 100)], 10**6)
                for c in cells for r in range(3)]
    data = tfrecord(payloads) * args.copies
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.tfrecord"
        path.write_bytes(data)
        n = len(payloads) * args.copies
        start, cpu = time.perf_counter(), time.process_time()
        table = nb101_truth.convert(path)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    per_record = cpu / n
    lines = ["# Converting NAS-Bench-101's data file (analysis/nb101_truth.py)", "",
             f"`OMP_NUM_THREADS=1 python benchmarks/nb101_truth.py --copies {args.copies}`: a synthetic file in the "
             "benchmark's framing (the paper's 500 cells x 3 repeats, repeated), CRC checks on, one thread.", "",
             "| records | bytes per record | CPU s | wall s | CPU µs per record | projected CPU s for the real file |",
             "| --- | --- | --- | --- | --- | --- |",
             f"| {n:,} | {len(data) / n:.0f} | {cpu:.1f} | {wall:.1f} | {1e6 * per_record:.1f} | "
             f"{per_record * REAL_RECORDS * (REAL_BYTES / REAL_RECORDS) / (len(data) / n):.0f} |", "",
             f"{len(table)} distinct hashes converted. The projection scales CPU time per byte to the real file's "
             f"{REAL_RECORDS:,} records and 499 MB; the real file was not available here to time directly.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
