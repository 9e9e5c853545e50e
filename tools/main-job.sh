#!/usr/bin/env bash
# lethe's main job on a fresh machine: set up, fetch real MNIST, and run the paper's MNIST
# label-noise repair experiment (train the CNN on the noisy 3,000-example subset, identify the
# causes with every method, remove them, fine-tune, report) over three seeds, mean ± std (what
# fits in about 15 minutes on two CPU cores) — on the GPU when there is one, else on the CPU.
# Ends by saying where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
lethe=${LETHE_BUILD_DIR:-build}/lethe
out=${LETHE_OUT:-runs/experiment}
"$lethe" fetch-data mnist --data data/mnist
"$lethe" --seed 0 experiment --seeds "${LETHE_SEEDS:-3}" --data data/mnist --out-dir "$out"
echo "main job: report in $out/report.md (figures and results.json beside it)" >&2
