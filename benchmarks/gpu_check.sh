#!/usr/bin/env bash
# One short GPU check (a few minutes on one H200): our step vs the reference pipeline on CUDA at the
# default width and at the paper network (C=16, N=5), as JSON; then the real train command on CIFAR-10
# at the paper network for one epoch with 1 worker vs 4 workers sharing the GPU (cell-trainings per
# GPU-hour); plus nvidia-smi for the record.
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (OUT_DIR defaults to $OUT, else benchmarks/results/gpu)
# CONC_CELLS, CONC_BUDGET and CONC_EPOCHS shrink the concurrency part (e.g. to try the script on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
PY="${PYTHON:-python}"
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpu.csv" || true
if [ ! -d /tmp/cifar10-jpeg/train ] && [ -f ../shared/data/cifar10-jpeg.tar.gz ]; then
  mkdir -p /tmp/cifar10-jpeg && tar xzf ../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10-jpeg
fi
"$PY" benchmarks/throughput.py --device cuda --threads 4 --batch-size 128 --rounds 5 --steps 20 \
  --no-projection --json "$OUT_DIR/throughput_c8.json" | tee "$OUT_DIR/throughput_c8.txt"
"$PY" benchmarks/throughput.py --device cuda --threads 4 --width 16 --cells-per-stage 5 --rounds 5 --steps 20 \
  --no-projection --json "$OUT_DIR/throughput_paper.json" | tee "$OUT_DIR/throughput_paper.txt"

# Cells trained concurrently on one GPU: the same cells, 1 worker vs 4, wall time of the whole command.
N="${CONC_CELLS:-8}"; BUDGET="${CONC_BUDGET:-paper}"; EPOCHS="${CONC_EPOCHS:-1}"
DATA=(dataset=imagefolder data_root=/tmp/cifar10-jpeg "dataset.cache_dir=$OUT_DIR/cache")
now() { "$PY" -c 'import time; print(time.time())'; }
"$PY" -m study.sample n="$N" study_dir="$OUT_DIR/conc-sample" > /dev/null
# decode the JPEGs into the shared cache once, outside the timed commands
"$PY" -m study.train objective=supervised "${DATA[@]}" budget=tiny cells=[0] study_dir="$OUT_DIR/conc-sample" \
  > "$OUT_DIR/conc-warm.log" 2>&1
for W in 1 4; do
  rm -rf "$OUT_DIR/conc-w$W" && mkdir -p "$OUT_DIR/conc-w$W"
  cp "$OUT_DIR/conc-sample/cells.jsonl" "$OUT_DIR/conc-sample/study.json" "$OUT_DIR/conc-w$W/"
  T0=$(now)
  "$PY" -m study.train objective=supervised "${DATA[@]}" budget="$BUDGET" budget.epochs="$EPOCHS" workers="$W" \
    study_dir="$OUT_DIR/conc-w$W" > "$OUT_DIR/conc-w$W.log" 2>&1
  T1=$(now)
  "$PY" -c "import sys; n, e, w, s = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[5]) - float(sys.argv[4]);
print(f'workers={w}: {n} cells x {e} epoch(s) of budget=$BUDGET in {s:.1f} s -> '
      f'{3600 * n * e / s:.0f} cell-epochs per hour')" "$N" "$EPOCHS" "$W" "$T0" "$T1" | tee -a "$OUT_DIR/concurrency.txt"
done
