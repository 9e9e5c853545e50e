#!/usr/bin/env bash
# Builds lethe with the address and undefined-behaviour sanitizers (build-asan/, CPU only) and
# runs the whole test suite there: every test binary and every `lethe` the CLI tests start is
# instrumented, and any report (out-of-bounds access, use after free, leak, signed overflow,
# misaligned or out-of-range conversion...) fails the run.
#
#   bash tools/sanitize.sh
#
# Environment: LETHE_SANITIZE_BUILD (default build-asan), JOBS (default all cores),
# LETHE_MNIST_DIR (real MNIST for the tests that read it; they skip without it), CC/CXX (the
# compiler of a new build folder; default clang when installed, see below),
# LETHE_SANITIZE_FUZZ=1 (the same build also holds the libFuzzer targets, -DLETHE_FUZZ=ON, so
# that tools/fuzz.sh runs them from it with LETHE_FUZZ_BUILD set to this folder: one
# instrumented build instead of two; CI does this, see .ci/run).
# The CUDA backend is off here: the CUDA runtime and the address sanitizer's shadow memory do
# not mix, and tools/gpu-check.sh runs the CUDA tests under compute-sanitizer instead.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${LETHE_SANITIZE_BUILD:-build-asan}
# clang, when CC/CXX do not choose: on a 2-core machine it built this suite with both sanitizers
# in 445 s where gcc 12 took 1435 s, and it is the compiler (and sanitizer runtime) of the fuzz
# targets. A build folder keeps the compiler it was configured with.
if [[ -z "${CXX:-}" ]] && command -v clang++ >/dev/null && command -v clang >/dev/null; then
  export CC=clang CXX=clang++
fi
jobs=${JOBS:-$(nproc)}
start=$SECONDS
# MPI is off here too: Open MPI keeps allocations past exit and starts helper threads that the
# leak checker would report as lethe's; the MPI tests run in the Release suite (tools/test.sh),
# and the single-process code they share is checked here.
# LETHE_FUZZ adds libFuzzer's coverage instrumentation to every object (its callbacks are the
# sanitizer runtime's no-ops outside the fuzz targets): the same compile time here, and the
# suite runs about as fast (2026-12-07: see .ci/run).
fuzz=OFF
[[ "${LETHE_SANITIZE_FUZZ:-0}" == 1 ]] && fuzz=ON
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_CUDA=OFF -DLETHE_MPI=OFF \
  -DLETHE_SANITIZE=address,undefined -DLETHE_FUZZ=$fuzz -DLETHE_BUILD_BENCH=OFF >/dev/null
ninja -C "$build" -j "$jobs"
built=$((SECONDS - start))

# halt_on_error / -fno-sanitize-recover: the first report ends the process with a failure.
# detect_leaks: LeakSanitizer at exit. The suppressions file names what is not lethe's (see it).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tools/sanitizers/lsan.supp:print_suppressions=0}"
if [[ -z "${LETHE_MNIST_DIR:-}" && -d data/mnist ]]; then export LETHE_MNIST_DIR="$PWD/data/mnist"; fi

# BlasCore's sweep reruns the double-precision tests under every BLAS core in child processes:
# lethe's code is the same in each, only OpenBLAS's uninstrumented kernels differ, and the
# Release suite (tools/test.sh) runs it. Here it took a minute of the suite's eight (67 s).
ctest --test-dir "$build" --output-on-failure -j "$jobs" -E '^BlasCore\.DoublePrecisionTestsPassUnderEveryCore'
echo "sanitize: built in ${built} s, tests in $((SECONDS - start - built)) s" >&2
