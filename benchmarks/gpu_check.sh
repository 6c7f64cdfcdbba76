#!/usr/bin/env bash
# The one-command GPU check (about 8 minutes on one H200), for a machine with torch but no registry access:
#   1. the four objectives train on CUDA at the paper network (C=16, N=5) for 2 epochs on a CIFAR-10
#      subset: every record complete, on cuda, loss falling, best accuracy above chance;
#   2. host-device synchronisations per training step of each objective (should be 0);
#   3. our step vs the reference pipeline (benchmarks/throughput.py) at C=8 N=1 and at the paper network;
#   4. 1 vs 4 vs 8 trainings sharing the GPU (the real train command, cell-epochs per hour);
#   5. seeds side by side: the train command with 4 seeds stacked as one network (fuse=4) against the same
#      seeds alone (fuse=1), records complete; then benchmarks/fused.py (K = 1, 2, 3, 4, 8 stacked).
# Prepare here, once:   bash benchmarks/gpu_bundle.sh .gpu_bundle
# Then on the GPU:      GPU_BUNDLE=.gpu_bundle bash benchmarks/gpu_check.sh [OUT_DIR]
# OUT_DIR (default $OUT, else benchmarks/results/gpu) receives small summaries only; everything else stays
# in GPU_CHECK_WORK (default a fresh /tmp/gpu_check.*). Any failed step or run exits non-zero with a line
# starting "GPU CHECK FAILED". GPU_CHECK_DEVICE=cpu runs every step at toy sizes on a CPU (a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
PY="${PYTHON:-python}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
BUNDLE="${GPU_BUNDLE:-.gpu_bundle}"
mkdir -p "$OUT_DIR"

fail() { echo "GPU CHECK FAILED: $*" | tee -a "$OUT_DIR/verdict.txt" >&2; exit 1; }
[ -d "$BUNDLE/site" ] && [ -d "$BUNDLE/data/cifar-10-batches-py" ] \
  || fail "no bundle at $BUNDLE; build it with: bash benchmarks/gpu_bundle.sh $BUNDLE"
BUNDLE="$(cd "$BUNDLE" && pwd)"
WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$WORK"
export PYTHONPATH="$PWD:$BUNDLE/site${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$PY" -c "import torch, numpy, hydra, omegaconf, submitit, xautodl" 2> "$WORK/imports.log" \
  || fail "imports: $(tail -n 1 "$WORK/imports.log") (torch and numpy must be installed; the rest is the bundle)"
if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch; assert torch.cuda.is_available()" 2> /dev/null || fail "torch sees no usable CUDA GPU"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpu.csv" 2>&1 || true
  OBJ=(budget=paper budget.epochs=2 dataset.train_subset=0 dataset.test_subset=0); CELLS=2; LEARNING=--learning
  CONC=(budget=paper budget.epochs=1 dataset.train_subset=5000 dataset.test_subset=1000); CONC_CELLS=8
  CONC_WORKERS="1 4 8"; TP=(--rounds 5 --steps 20); TP_PAPER=1; FUSED=(--cells 2 --steps 10)
else  # a dry run of every step at toy sizes
  OBJ=(budget=tiny budget.epochs=2 dataset.train_subset=128 dataset.test_subset=64); CELLS=1; LEARNING=
  CONC=(budget=tiny budget.epochs=1 dataset.train_subset=128 dataset.test_subset=64); CONC_CELLS=2
  CONC_WORKERS="2"; TP=(--rounds 1 --steps 1 --images 64 --batch-size 16); TP_PAPER=0
  FUSED=(--cells 1 --epochs 1 --ks 2 --no-paper)
fi
DATA=(dataset=cifar10 "data_root=$BUNDLE/data" dataset.download=false "device=$DEVICE")
: > "$OUT_DIR/timings.txt"
now() { date +%s%3N; }  # milliseconds
timed() {  # timed NAME COMMAND...: run, log to $WORK/NAME.log, record seconds; on failure keep the log's tail
  local name=$1 t0; shift; t0=$(now)
  if ! "$@" > "$WORK/$name.log" 2>&1; then
    tail -n 40 "$WORK/$name.log" > "$OUT_DIR/$name.log.tail"
    fail "$name: the command failed (last lines in $OUT_DIR/$name.log.tail): $(tail -n 1 "$WORK/$name.log")"
  fi
  echo "$name $(( ($(now) - t0) / 1000 )) s" | tee -a "$OUT_DIR/timings.txt"
}

# 1. The four objectives, on the device, at the paper network.
timed sample "$PY" -m study.sample n="$CELLS" study_dir="$WORK/objectives"
timed objectives "$PY" -m study.train -m objective=supervised,rotation,colorization,jigsaw "${DATA[@]}" "${OBJ[@]}" \
  study_dir="$WORK/objectives"
"$PY" benchmarks/gpu_records.py "$WORK/objectives" --runs $((4 * CELLS)) --device "$DEVICE" $LEARNING \
  --json "$OUT_DIR/objectives.json" | tee "$OUT_DIR/objectives.txt" || fail "objective runs: see above"

# 2. Host-device synchronisations per step (counted on CUDA only; elsewhere the steps just run).
timed syncs "$PY" benchmarks/gpu_syncs.py --device "$DEVICE" --json "$OUT_DIR/syncs.json"
tee "$OUT_DIR/syncs.txt" < "$WORK/syncs.log"

# 3. Our step vs the reference pipeline, same cells, device and threads.
timed throughput_c8 "$PY" benchmarks/throughput.py --device "$DEVICE" --threads 4 --batch-size 128 "${TP[@]}" \
  --cifar "$BUNDLE/data" --no-projection --json "$OUT_DIR/throughput_c8.json"
cp "$WORK/throughput_c8.log" "$OUT_DIR/throughput_c8.txt"
if [ "$TP_PAPER" = 1 ]; then
  timed throughput_paper "$PY" benchmarks/throughput.py --device "$DEVICE" --threads 4 --width 16 \
    --cells-per-stage 5 "${TP[@]}" --cifar "$BUNDLE/data" --no-projection --json "$OUT_DIR/throughput_paper.json"
  cp "$WORK/throughput_paper.log" "$OUT_DIR/throughput_paper.txt"
fi

# 4. Trainings sharing the device: the same cells with W workers, wall time of the whole command.
timed conc_sample "$PY" -m study.sample n="$CONC_CELLS" study_dir="$WORK/conc-sample"
: > "$OUT_DIR/concurrency.txt"
for W in $CONC_WORKERS; do
  rm -rf "$WORK/conc-w$W" && mkdir -p "$WORK/conc-w$W"
  cp "$WORK/conc-sample/cells.jsonl" "$WORK/conc-sample/study.json" "$WORK/conc-w$W/"
  T0=$(now)
  timed "conc-w$W" "$PY" -m study.train objective=supervised "${DATA[@]}" "${CONC[@]}" workers="$W" \
    study_dir="$WORK/conc-w$W"
  T1=$(now)
  "$PY" benchmarks/gpu_records.py "$WORK/conc-w$W" --runs "$CONC_CELLS" --device "$DEVICE" > /dev/null \
    || fail "concurrency with $W worker(s): runs failed (see $WORK/conc-w$W)"
  "$PY" -c "import sys; n, w, s = int(sys.argv[1]), sys.argv[2], (int(sys.argv[4]) - int(sys.argv[3])) / 1e3;
print(f'workers={w}: {n} cells x 1 epoch in {s:.1f} s -> {3600 * n / s:.0f} cell-epochs per hour')" \
    "$CONC_CELLS" "$W" "$T0" "$T1" | tee -a "$OUT_DIR/concurrency.txt"
done
# 5. Seeds side by side: the train command fused and alone on the same cells, then the per-K benchmark.
: > "$OUT_DIR/fused.txt"
for F in 1 4; do
  rm -rf "$WORK/fuse$F" && mkdir -p "$WORK/fuse$F"
  cp "$WORK/conc-sample/cells.jsonl" "$WORK/conc-sample/study.json" "$WORK/fuse$F/"
  T0=$(now)
  timed "fuse$F" "$PY" -m study.train objective=supervised "${DATA[@]}" "${CONC[@]}" "seed=[0,1,2,3]" fuse="$F" \
    workers=1 study_dir="$WORK/fuse$F"
  T1=$(now)
  "$PY" benchmarks/gpu_records.py "$WORK/fuse$F" --runs $((4 * CONC_CELLS)) --device "$DEVICE" > /dev/null \
    || fail "4 seeds with fuse=$F: runs failed (see $WORK/fuse$F)"
  "$PY" -c "import sys; n, f, s = int(sys.argv[1]), sys.argv[2], (int(sys.argv[4]) - int(sys.argv[3])) / 1e3;
print(f'fuse={f}: {n} trainings x 1 epoch in {s:.1f} s -> {3600 * n / s:.0f} training-epochs per hour')" \
    $((4 * CONC_CELLS)) "$F" "$T0" "$T1" | tee -a "$OUT_DIR/fused.txt"
done
timed fused_bench "$PY" benchmarks/fused.py --device "$DEVICE" "${FUSED[@]}" --json "$OUT_DIR/fused.json"
tail -n 20 "$WORK/fused_bench.log" >> "$OUT_DIR/fused.txt"
echo "GPU CHECK PASSED on $DEVICE: outputs in $OUT_DIR, work files in $WORK" | tee "$OUT_DIR/verdict.txt"
