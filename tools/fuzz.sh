#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, address + undefined sanitizers) into build-fuzz/ and runs
# each for a bounded time from its seed corpus in fuzz/corpus/<name>/. Fails when any target
# finds a crash, a leak, a sanitizer report or a time-out; the input that did it is kept in
# <build>/fuzz-findings/<name>/ and its path printed, to become a regression test in tests/.
#
#   bash tools/fuzz.sh                      # every target, 60 s each
#   LETHE_FUZZ_SECONDS=600 bash tools/fuzz.sh safetensors mnist_idx
#
# Environment: LETHE_FUZZ_SECONDS (per target, default 60), LETHE_FUZZ_BUILD (default
# build-fuzz), JOBS (build jobs, default all cores), LETHE_FUZZ_PARALLEL (targets run at once,
# default all cores). Needs clang and libFuzzer (Debian: clang,
# libclang-rt-dev, libomp-dev; tools/setup.sh installs them).
# New inputs that add coverage go to <build>/fuzz-corpus/<name>/, never into the checked-in
# seeds; copy the interesting ones into fuzz/corpus/<name>/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${LETHE_FUZZ_SECONDS:-60}
build=${LETHE_FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-$(nproc)}
for tool in clang clang++ cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (run tools/setup.sh)" >&2; exit 2; }
done

targets=("$@")
if ((${#targets[@]} == 0)); then
  for src in fuzz/fuzz_*.cpp; do
    name=$(basename "$src" .cpp)
    targets+=("${name#fuzz_}")
  done
fi

start=$SECONDS
mkdir -p "$build"
# A build folder configured with LETHE_FUZZ=ON already (tools/sanitize.sh's with
# LETHE_SANITIZE_FUZZ=1, as CI runs it) is used as it is: its targets are built there, or found
# built. Otherwise this folder is configured for the fuzz targets alone.
if ! grep -qx 'LETHE_FUZZ:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  # The parsers under fuzzing never reach the collectives: MPI stays out of these builds.
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_CUDA=OFF -DLETHE_MPI=OFF \
    -DLETHE_FUZZ=ON -DLETHE_BUILD_TESTS=OFF -DLETHE_BUILD_BENCH=OFF >"$build/fuzz-configure.log" 2>&1 ||
    { cat "$build/fuzz-configure.log" >&2; exit 1; }
fi
ninja -C "$build" -j "$jobs" $(printf 'fuzz_%s ' "${targets[@]}")
echo "fuzz: built ${#targets[@]} targets in $((SECONDS - start)) s" >&2

# halt_on_error: the first report ends the run with a non-zero status, as a crash does.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# The targets run side by side, as many at once as there are cores (each fuzzer is one process
# on one core): eight targets of 60 s take four minutes on two cores, not eight.
parallel=${LETHE_FUZZ_PARALLEL:-$(nproc)}
((parallel >= 1)) || parallel=1
# run_one NAME: fuzzes one target; its summary line goes to <build>/fuzz-<name>.result and its
# exit status says whether it passed.
run_one() {
  local name="$1" seeds="fuzz/corpus/$1" corpus="$build/fuzz-corpus/$1" findings="$build/fuzz-findings/$1"
  local log="$build/fuzz-$1.log" result="$build/fuzz-$1.result" t0=$SECONDS runs cov f
  if [[ ! -d "$seeds" ]]; then
    echo "fuzz: no seed corpus $seeds for target $name" >&2
    printf '%-20s FAIL  no seed corpus\n' "$name" >"$result"
    return 1
  fi
  mkdir -p "$corpus" "$findings"
  echo "fuzz: $name for ${seconds} s" >&2
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: one taking 2 GB is a memory bomb.
  if "$build/fuzz_$name" "$corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
    printf '%-20s ok    %4ss  %9s runs  coverage %s\n' "$name" $((SECONDS - t0)) "$runs" "$cov" >"$result"
    return 0
  fi
  { echo "fuzz: $name FAILED; the end of $log:"; tail -40 "$log"
    for f in "$findings"/*; do [[ -e "$f" ]] && echo "fuzz: failing input kept at $f"; done; } >&2
  printf '%-20s FAIL  %4ss\n' "$name" $((SECONDS - t0)) >"$result"
  return 1
}

failed=()
summary=()
declare -A pid_of=()
for name in "${targets[@]}"; do
  rm -f "$build/fuzz-$name.result"
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  run_one "$name" &
  pid_of[$name]=$!
done
for name in "${targets[@]}"; do
  wait "${pid_of[$name]}" || failed+=("$name")
  summary+=("$(cat "$build/fuzz-$name.result" 2>/dev/null || printf '%-20s FAIL  no result' "$name")")
done

printf '%s\n' "${summary[@]}" >&2
echo "fuzz: $((SECONDS - start)) s in all" >&2
if ((${#failed[@]})); then
  echo "fuzz: failures in: ${failed[*]}" >&2
  exit 1
fi
