"""Verdict on the objectives part of benchmarks/gpu_check.sh: did every run finish, on the device, learning?

    python benchmarks/gpu_records.py STUDY_DIR --runs 8 --device cuda [--learning] [--json summary.json]

Prints one line per run and exits 1 with a `GPU CHECK FAILED:` line naming each problem: a run missing or
failed, trained on another device type, or (with --learning) a training loss that did not fall or a best
test accuracy not above chance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.store.records import iter_records  # noqa: E402

# Accuracy of guessing: 10 classes, 4 rotations, 24 permutations (2x2 jigsaw), 313 colour bins.
CHANCE = {"supervised": 1 / 10, "rotation": 1 / 4, "jigsaw": 1 / 24, "colorization": 1 / 313}


def problems(rec: dict, device: str, learning: bool) -> list[str]:
    """What is wrong with one run record (empty when nothing is)."""
    name = f"{rec.get('objective')} cell {rec.get('cell_id')}"
    if rec.get("status") != "complete":
        return [f"{name} {rec.get('status')}: {rec.get('reason')}"]
    found = []
    if rec.get("device_type") != device:
        found.append(f"{name} trained on {rec.get('device_type') or rec.get('device')}, not {device}")
    if learning:
        loss = rec["history"]["train_loss"]
        if not loss[-1] < loss[0]:
            found.append(f"{name} training loss did not fall ({loss[0]:.4f} -> {loss[-1]:.4f})")
        chance = CHANCE.get(rec["objective"], 0.0)
        if not rec["test_acc_best"] > chance:
            found.append(f"{name} best test accuracy {rec['test_acc_best']:.4f} is not above chance {chance:.4f}")
    return found


def main() -> None:
    """Check the records, print and optionally write the summary, exit 1 on any problem."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study_dir", type=Path)
    p.add_argument("--runs", type=int, required=True, help="complete runs expected")
    p.add_argument("--device", default="cuda")
    p.add_argument("--learning", action="store_true", help="also require falling loss and accuracy above chance")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    recs = [rec for _, rec in iter_records(args.study_dir)]
    found = [f"{len(recs)} run records in {args.study_dir}, expected {args.runs}"] if len(recs) != args.runs else []
    rows = []
    for rec in recs:
        found += problems(rec, args.device, args.learning)
        loss = (rec.get("history") or {}).get("train_loss") or []
        rows.append({k: rec.get(k) for k in ("objective", "cell_id", "status", "device_type", "precision",
                                             "test_acc_best", "epochs", "wall_s", "reason")} | {"train_loss": loss})
        print(f"{rec.get('objective'):<13} {rec.get('cell_id')} {rec.get('status'):<8} {rec.get('device_type')} "
              f"{rec.get('precision')} best {rec.get('test_acc_best') or 0:.4f} loss "
              + " ".join(f"{x:.3f}" for x in loss) + f" ({rec.get('wall_s') or 0:.1f}s)")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "problems": found}, indent=2))
    for line in found:
        print(f"GPU CHECK FAILED: {line}", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
