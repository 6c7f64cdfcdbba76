"""The interruption matrix: every command, stopped at each moment by each signal, timed.

For each case of tests/test_interrupt.py (the same harness, tests/interruption.py): the exit status, the
seconds from the signal until the command and every process it started are gone, whether anything printed
a traceback, how many lines stderr got, processes left, and the run records before and after the same
command is run again. Writes a Markdown table (default benchmarks/results/interrupt_matrix.md).

    python benchmarks/interrupt_matrix.py [--out FILE] [--only SUBSTRING]

The times are wall-clock seconds on whatever machine runs it (its load included): they show that each
command stops within seconds, not how fast a stop can be.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interruption import (NOISE, Outcome, handlers_ready, interrupt, job_logs, job_task,  # noqa: E402
                                mid_run, rerun, workers, workers_initialising, workers_starting)
from tests.test_faults import sample  # noqa: E402
from tests.test_interrupt import CASES, LOCAL, train_args  # noqa: E402


def _train(tmp: Path, moment: str, signum: int, target: str, n_workers: int, launcher: list[str]) -> Outcome:
    study = sample(tmp, n=2)
    args = [*launcher, *train_args(study, n_workers)]
    ready = {"imports": handlers_ready, "worker start-up": lambda pid: workers_starting(pid, study),
             "worker initialiser": workers_initialising, "mid-run": lambda pid: mid_run(study)}[moment]
    victim = None
    if target == "a worker":
        victim = lambda pid: workers(pid)[:1]  # noqa: E731
    elif target == "job":
        victim = (lambda pid: job_task(pid)[:1]) if signum == signal.SIGUSR2 else job_task
    out = interrupt("study.train", args, tmp / "logs", moment, ready, signum, target, victim=victim)
    if launcher and any(word in job_logs(study) for word in NOISE):
        out.notes.append("traceback in a job's log")
    return rerun("study.train", args, tmp / "rerun", out, study)


def _sample(tmp: Path, moment: str, signum: int, target: str) -> Outcome:
    study = tmp / "s"
    args = ["space=darts", "n=200", f"study_dir={study}"]
    ready = handlers_ready if moment == "imports" else (lambda pid: (study / "logs").exists())
    out = interrupt("study.sample", args, tmp / "logs", moment, ready, signum, target)
    out = rerun("study.sample", args, tmp / "rerun", out, study)
    out.records_before = out.records_after = None  # a sample has cells, not records
    return out


def _correlate(tmp: Path, moment: str, signum: int, target: str) -> Outcome:
    import numpy as np

    from tests.test_analysis_correlate import write_study

    rng = np.random.default_rng(0)
    cells = [f"c{i:02d}" for i in range(40)]
    acc = {(o, s): {c: float(v) for c, v in zip(cells, rng.uniform(0.2, 0.9, 40))}
           for o in ("supervised", "rotation") for s in (0, 1)}
    study = write_study(tmp / "s", cells, acc)
    ready = handlers_ready if moment == "imports" else (lambda pid: (study / "logs").exists())
    out = interrupt("analysis.correlate", [f"study_dir={study}", "bootstrap=20000", "permutations=20000"],
                    tmp / "logs", moment, ready, signum, target)
    return rerun("analysis.correlate", [f"study_dir={study}", "bootstrap=200", "permutations=200", "trials=200"],
                 tmp / "rerun", out, study)


def cases() -> list[tuple[str, object]]:
    """(label, a function of a temporary folder giving the Outcome) for every case of the matrix."""
    found = []
    for moment, signum, target, n in CASES:
        found.append((f"study.train w={n} | {moment} | {signal.Signals(signum).name} to the {target}",
                      lambda tmp, m=moment, s=signum, t=target, n=n: _train(tmp, m, s, t, n, [])))
    found.append(("study.train w=2 | mid-run | SIGKILL to the command",
                  lambda tmp: _train(tmp, "mid-run", signal.SIGKILL, "command", 2, [])))
    found.append(("study.train w=2 | mid-run | SIGKILL to a worker",
                  lambda tmp: _train(tmp, "mid-run", signal.SIGKILL, "a worker", 2, [])))
    for name, (signum, target, _) in LOCAL.items():
        found.append((f"study.train local launcher | mid-run | {name}",
                      lambda tmp, s=signum, t=target: _train(tmp, "mid-run", s, t, 2, ["-m", "hydra/launcher=local"])))
    for moment, signum, target in (("imports", signal.SIGINT, "group"), ("imports", signal.SIGTERM, "command"),
                                   ("sampling", signal.SIGINT, "group"), ("sampling", signal.SIGTERM, "command")):
        found.append((f"study.sample | {moment} | {signal.Signals(signum).name} to the {target}",
                      lambda tmp, m=moment, s=signum, t=target: _sample(tmp, m, s, t)))
    for moment, signum, target in (("imports", signal.SIGINT, "group"), ("analysis", signal.SIGINT, "group"),
                                   ("analysis", signal.SIGTERM, "command")):
        found.append((f"analysis.correlate | {moment} | {signal.Signals(signum).name} to the {target}",
                      lambda tmp, m=moment, s=signum, t=target: _correlate(tmp, m, s, t)))
    return found


def row(label: str, out: Outcome) -> str:
    """One Markdown row of the matrix."""
    records = "" if out.records_before is None else f"{out.records_before} -> {out.records_after}"
    first = out.lines[0] if out.lines else ""
    said = first.split(":")[0] if first else "(none)"
    return (f"| {label} | {out.rc} | {out.stop_s:.1f} | {'yes' if out.traceback or out.notes else 'no'} | "
            f"{len(out.lines)} ({said}) | {len(out.leftovers)} | {records} | {out.rerun_rc} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "interrupt_matrix.md"))
    parser.add_argument("--only", default="", help="run the cases whose label holds this text")
    opts = parser.parse_args()
    lines = ["# Interruption matrix", "",
             f"`python benchmarks/interrupt_matrix.py` on {time.strftime('%Y-%m-%d')}: each command stopped at each "
             "moment; the stop time runs from the signal until the command and every process it started are "
             "gone (wall-clock seconds on a shared 2-core machine under load, not a speed figure). Records are "
             "counted before and after the same command is run again (2 cells: 2 records when complete).", "",
             "| command \\| moment \\| signal | exit | stop s | traceback | stderr lines | left | records "
             "| rerun exit |",
             "|---|---|---|---|---|---|---|---|"]
    for label, run in cases():
        if opts.only not in label:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = run(Path(tmp))
        lines.append(row(label, out))
        print(lines[-1], flush=True)
    Path(opts.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
