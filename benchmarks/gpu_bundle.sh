#!/usr/bin/env bash
# Write everything benchmarks/gpu_check.sh needs on a GPU machine with torch but no package registry:
# pure-Python packages (Hydra, OmegaConf, submitit, xautodl, ...) and a CIFAR-10 subset, under 60 MB.
#   bash benchmarks/gpu_bundle.sh DIR [--archive PATH]   (DIR e.g. .gpu_bundle, git-ignored; then
#                                                          GPU_BUNDLE=DIR gpu_check.sh)
# Further arguments go to benchmarks/gpu_bundle.py (--archive: the CIFAR-10 JPEG tarball, when it is not at
# ../shared/data/cifar10-jpeg.tar.gz). TRAIN_PER_CLASS / TEST_PER_CLASS size the subset (default 1000 / 200
# images per class).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu_bundle.sh DIR [--archive PATH]" >&2; exit 2; }
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" benchmarks/gpu_bundle.py "$@" --train-per-class "${TRAIN_PER_CLASS:-1000}" \
  --test-per-class "${TEST_PER_CLASS:-200}"
