"""Thread policy under load: one search or one training at 1 and at all cores' threads, on a quiet and on a
loaded machine, with OpenMP's default and its passive wait policy.

    python benchmarks/threads.py --out /tmp/threads
    python benchmarks/threads.py --only search --loads 0,1 --out /tmp/threads

Each case runs the real command in a fresh study folder (`study.search` with `search_budget=tiny
search_budget.epochs=E`, or `study.train budget=tiny` on N cells; digits, one worker) while `load` other
processes spin on the CPU (a pure-Python busy loop each: the "other work" of a shared machine), and reports
the command's wall seconds and the CPU seconds it and its children used (resource.getrusage). `passive`
sets OMP_WAIT_POLICY=PASSIVE in the command's environment: waiting OpenMP threads sleep instead of
spinning. Writes --out/threads.md and threads.json; docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spin(stop) -> None:
    """Busy work until `stop` is set: a process that wants a whole core."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _command(kind: str, study: Path, threads: int, epochs: int, cells: int) -> list[list[str]]:
    py = [sys.executable, "-m"]
    if kind == "search":
        return [[*py, "study.search", "search_budget=tiny", f"search_budget.epochs={epochs}", "workers=1",
                 f"threads={threads}", f"study_dir={study}"]]
    return [[*py, "study.sample", f"n={cells}", f"study_dir={study}"],
            [*py, "study.train", "budget=tiny", "workers=1", f"threads={threads}", f"study_dir={study}"]]


def measure(kind: str, threads: int, load: int, passive: bool, epochs: int, cells: int) -> dict:
    """Wall and CPU seconds of the command (the last of its steps) under `load` spinning processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    spinners = [ctx.Process(target=_spin, args=(stop,)) for _ in range(load)]
    with tempfile.TemporaryDirectory() as tmp:
        *setup, timed = _command(kind, Path(tmp) / "s", threads, epochs, cells)
        for step in setup:
            subprocess.run(step, env=env, check=True, capture_output=True)
        for p in spinners:
            p.start()
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(timed, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            stop.set()
            for p in spinners:
                p.join()
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed: {done.stderr[-1000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"kind": kind, "threads": threads, "load": load, "omp_wait": "passive" if passive else "default",
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def report(rows: list[dict]) -> str:
    lines = ["| command | other busy processes | threads | OMP wait policy | wall s | CPU s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['load']} | {r['threads']} | {r['omp_wait']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("search", "train"), default=None, help="one command (default: both)")
    p.add_argument("--loads", default="0,2", help="busy processes beside the command, comma-separated")
    p.add_argument("--threads", default=f"1,{os.cpu_count()}", help="thread counts, comma-separated")
    p.add_argument("--epochs", type=int, default=6, help="search epochs")
    p.add_argument("--cells", type=int, default=6, help="cells trained")
    p.add_argument("--out", type=Path, default=Path("/tmp/threads"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in [args.only] if args.only else ["search", "train"]:
        for load in [int(v) for v in args.loads.split(",")]:
            for threads in [int(v) for v in args.threads.split(",")]:
                for passive in (False, True):
                    rows.append(measure(kind, threads, load, passive, args.epochs, args.cells))
                    print(json.dumps(rows[-1]), flush=True)
    (args.out / "threads.json").write_text(json.dumps(rows, indent=1) + "\n")
    table = report(rows)
    (args.out / "threads.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
