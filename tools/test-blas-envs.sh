#!/usr/bin/env bash
# Runs the tests labelled `blas` (those whose results depend on OpenBLAS's kernels: double-
# precision products and eigendecompositions, the core lethe selects; see CMakeLists.txt) again
# under each OpenBLAS environment a user may have: OPENBLAS_CORETYPE unset, then set to every core
# lethe can select on this CPU (`lethe info --json`'s selectable_cores: the CPU's own level and
# every one below it). A machine image that sets OPENBLAS_CORETYPE, as many do, would otherwise
# hide every other environment from CI.
#
# Every environment runs even after a failure; the script fails if any did and names each one.
# Expects a build (tools/test.sh makes it): LETHE_BUILD_DIR (default build).
# LETHE_BLAS_ENVS="unset Haswell ..." replaces the list (for a quick rerun of one environment).
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=${LETHE_BUILD_DIR:-build}
[[ -x "$build_dir/lethe" ]] || { echo "test-blas-envs: no $build_dir/lethe; run tools/test.sh first" >&2; exit 2; }
export LETHE_MNIST_DIR=${LETHE_MNIST_DIR:-$PWD/data/mnist}

if [[ -n "${LETHE_BLAS_ENVS:-}" ]]; then
  read -r -a envs <<<"$LETHE_BLAS_ENVS"
else
  # The selectable cores, read without jq: the JSON flattened, the one array picked out.
  cores=$(env -u OPENBLAS_CORETYPE -u LETHE_BLAS_CORE "$build_dir/lethe" --quiet info --json | tr -d ' \n' |
          grep -o '"selectable_cores":\[[^]]*\]' | grep -o '"[A-Za-z0-9_]*"' | tail -n +2 | tr -d '"')
  [[ -n "$cores" ]] || { echo "test-blas-envs: lethe info --json lists no selectable core" >&2; exit 2; }
  envs=(unset $cores)
fi

count=$(ctest --test-dir "$build_dir" -L blas -N | sed -n 's/^Total Tests: //p')
[[ "${count:-0}" -gt 0 ]] || { echo "test-blas-envs: no test carries the label blas" >&2; exit 2; }
echo "test-blas-envs: $count tests labelled blas, under ${#envs[@]} environments: ${envs[*]}" >&2

failed=()
for e in "${envs[@]}"; do
  if [[ "$e" == unset ]]; then
    name="OPENBLAS_CORETYPE unset"
    runner=(env -u OPENBLAS_CORETYPE -u LETHE_BLAS_CORE)
  else
    name="OPENBLAS_CORETYPE=$e"
    runner=(env -u LETHE_BLAS_CORE OPENBLAS_CORETYPE="$e")
  fi
  echo "==== blas environment: $name" >&2
  t0=$SECONDS
  if "${runner[@]}" ctest --test-dir "$build_dir" -L blas --output-on-failure -j "$(nproc)" >"$build_dir/blas-env.log" 2>&1; then
    echo "     passed ($((SECONDS - t0)) s): $(grep -E '^[0-9]+% tests passed' "$build_dir/blas-env.log")" >&2
  else
    cat "$build_dir/blas-env.log"
    echo "     FAILED under $name ($((SECONDS - t0)) s)" >&2
    failed+=("$name")
  fi
done

if ((${#failed[@]})); then
  printf 'test-blas-envs: the blas-labelled tests failed under: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "test-blas-envs: the blas-labelled tests passed under all ${#envs[@]} environments" >&2
