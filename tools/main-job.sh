#!/usr/bin/env bash
# lethe's main job on a fresh machine: set up, fetch real MNIST, train the paper's MNIST CNN on
# the seeded 3,000-example subset and evaluate it (on the GPU when there is one, else the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
lethe=${LETHE_BUILD_DIR:-build}/lethe
out=${LETHE_OUT:-runs/mnist}
mkdir -p "$out"
"$lethe" fetch-data mnist --data data/mnist
"$lethe" --seed 0 train --data data/mnist --subset 3000 --epochs 20 --out "$out/model.safetensors"
"$lethe" eval --model-file "$out/model.safetensors" --data data/mnist | tee "$out/eval.txt"
echo "main job: model and evaluation in $out/" >&2
