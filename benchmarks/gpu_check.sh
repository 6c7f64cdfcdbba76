#!/usr/bin/env bash
# One short GPU check (a few minutes on one H200): our step vs the reference pipeline on CUDA at the
# default width and at the paper network (C=16, N=5), as JSON, plus nvidia-smi for the record.
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (OUT_DIR defaults to $OUT, else benchmarks/results/gpu)
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
  --json "$OUT_DIR/throughput_c8.json" | tee "$OUT_DIR/throughput_c8.txt"
"$PY" benchmarks/throughput.py --device cuda --threads 4 --width 16 --cells-per-stage 5 --rounds 5 --steps 20 \
  --json "$OUT_DIR/throughput_paper.json" | tee "$OUT_DIR/throughput_paper.txt"
