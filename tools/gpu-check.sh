#!/usr/bin/env bash
# The one command for a GPU machine: build lethe with the CUDA backend (Release, build-gpu/), run
# the CUDA tests (plainly, then under compute-sanitizer), EWC-influence at dataset scale, lethe
# against torch.func and torch on the same GPU, then every test and the CUDA kernels'
# benchmarks, and print a summary.
# Exits non-zero when a step fails (2 when a dependency is missing before anything is built).
#
# The CUDA tests run twice more under compute-sanitizer (memcheck, then racecheck), each bounded
# by LETHE_SANITIZER_TIMEOUT seconds (default 240), with LETHE_CUDA_SYNC=1 so that a fault is
# reported by the launch of the kernel that made it; a sanitizer report fails the run.
#
# Made for a machine with the CUDA 13 toolkit, CMake and ninja but no package registry. What
# the build needs beyond those comes from source trees or a prebuilt prefix carried along in
# third_party_src/ at the repository root. tools/gpu-bundle.sh packs all of it (and real MNIST)
# from a Debian 12 machine into gpu-carry/bundle.tar.gz, which this script unpacks when
# third_party_src/ is absent:
#   third_party_src/googletest/   GoogleTest source (Debian: /usr/src/googletest)   required
#   third_party_src/benchmark/    Google Benchmark source                           optional
#   third_party_src/fmt/ json/ CLI11/   source trees, used when the system lacks them
#   third_party_src/prefix/       an install prefix (include/, lib/) for what has no source tree
#                                 here, e.g. OpenBLAS (cblas.h, libopenblas.so) and stb headers
# It first says what it found and where, and stops with a clear list when something required
# is missing. cuDNN is looked for in the CUDA toolkit, $CUDNN_ROOT, then the nvidia-cudnn
# Python wheel (PyTorch's), whose unversioned libcudnn.so link is missing and supplied here.
#
# With MNIST in data/mnist it also runs the dataset-scale stage, trains the MNIST CNN for one
# epoch (3000 examples, batch 64) through the lethe binary on the GPU and on the CPU, and scores
# D with ewc from the GPU-trained checkpoint on both devices, comparing the two rankings.
#
# A GPU machine is lent for minutes, so the steps after the build run in the order the GPU's
# acceptance needs them, each only when the time left in LETHE_GPU_BUDGET seconds (counted from
# the script's start, default 540: one 10-minute call with room to spare) covers its estimate;
# a step left out is reported as SKIP (budget). The order: the backend harness (every entry of
# kernels/backend.inc against the CPU, tests/kernels/test_backend_ops.cpp); the CUDA tests;
# EWC-influence at dataset scale (bench/dataset-scale.sh: ResNet-18 on 50,000 CIFAR-format
# images, FP32 then TF32, and the MNIST CNN on 60,000); lethe against torch.func and torch on
# this GPU (bench/compare-gpu.sh); memcheck; racecheck; MNIST end to end; every test; the
# benchmarks; the backend harness's perf mode; the convolutions' per-example paths timed one
# against another; attribution at query scale (bench/attribute-scale.sh, ResNet-9 at full size).
# LETHE_GPU_BUDGET=0 runs every step whatever the time.
#
# Environment: LETHE_GPU_BUILD (build folder, default build-gpu), LETHE_GPU_LOG_DIR (where the
# logs and summary go, default <build>/logs), LETHE_CUDA_ARCHITECTURES (default: the GPU's own,
# else "80;90"), LETHE_BENCH_FILTER (which benchmarks run, default the CUDA kernels', BM_Cuda),
# LETHE_BENCH_ARGS (extra lethe_bench flags), LETHE_SANITIZER_FILTER / LETHE_RACECHECK_FILTER
# (the tests each sanitizer runs), JOBS (default: all cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LETHE_GPU_BUILD:-$ROOT/build-gpu}"
SRC="$ROOT/third_party_src"
DEPS="$BUILD/_deps"
PREFIX="$DEPS/prefix"
LOGS="${LETHE_GPU_LOG_DIR:-$BUILD/logs}"
JOBS="${JOBS:-$(nproc)}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
BUNDLE="$ROOT/gpu-carry/bundle.tar.gz"
if [[ ! -d "$SRC" && -f "$BUNDLE" ]]; then
  echo "unpacking $BUNDLE"
  tar xzf "$BUNDLE" -C "$ROOT"
fi
mkdir -p "$DEPS" "$LOGS"
SUMMARY="$LOGS/summary.txt"
: >"$SUMMARY"

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
section() { printf '\n== %s ==\n' "$*"; }
# record STEP STATUS SECONDS [DETAIL]
results=()
record() { results+=("$(printf '%-22s %-5s %5ss  %s' "$1" "$2" "$3" "${4:-}")"); }

# ---- 1. tools ----------------------------------------------------------------------------------
section "tools"
missing=()
NVCC="$(command -v nvcc || true)"
[[ -z "$NVCC" && -x "$CUDA_HOME/bin/nvcc" ]] && NVCC="$CUDA_HOME/bin/nvcc"
for tool in cmake ninja c++; do command -v "$tool" >/dev/null || missing+=("$tool (not on PATH)"); done
[[ -n "$NVCC" ]] || missing+=("nvcc (neither on PATH nor at $CUDA_HOME/bin)")
[[ -n "$NVCC" ]] && say "nvcc:   $("$NVCC" --version | tail -1)"
command -v cmake >/dev/null && say "cmake:  $(cmake --version | head -1)"
command -v ninja >/dev/null && say "ninja:  $(ninja --version)"
if command -v nvidia-smi >/dev/null; then
  say "gpu:    $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
else
  say "gpu:    nvidia-smi not found (the CUDA tests will skip if no device is visible)"
fi

# ---- 2. dependencies ---------------------------------------------------------------------------
section "dependencies"
SEARCH_ROOTS=(/usr/lib /usr/share /usr/include /usr/local/lib /usr/local/share /usr/local/include "$PREFIX" "$SRC/prefix")
# find_first NAME-PATTERN [PATH-PATTERN]: the first file so named under the search roots.
find_first() {
  local root hit
  for root in "${SEARCH_ROOTS[@]}"; do
    [[ -d "$root" ]] || continue
    if [[ $# -gt 1 ]]; then
      hit="$(find "$root" -maxdepth 7 -name "$1" -path "$2" -print -quit 2>/dev/null || true)"
    else
      hit="$(find "$root" -maxdepth 7 -name "$1" -print -quit 2>/dev/null || true)"
    fi
    [[ -n "$hit" ]] && { printf '%s\n' "$hit"; return 0; }
  done
  return 1
}

# Source trees to build into $PREFIX: "package|directory names|cmake options".
declare -A source_dir=()
check_cmake_package() {  # NAME CONFIG-FILE REQUIRED DIRS...
  local name="$1" config="$2" required="$3" dir found
  shift 3
  if found="$(find_first "$config")"; then
    say "$(printf '%-14s found   %s' "$name" "$found")"
    return 0
  fi
  for dir in "$@"; do
    if [[ -f "$SRC/$dir/CMakeLists.txt" ]]; then
      source_dir[$name]="$SRC/$dir"
      say "$(printf '%-14s source  %s (built into %s)' "$name" "$SRC/$dir" "$PREFIX")"
      return 0
    fi
  done
  if [[ "$required" == required ]]; then
    missing+=("$name: no $config installed and no source tree at third_party_src/{$(IFS=,; echo "$*")}")
  else
    say "$(printf '%-14s absent  (optional; skipped)' "$name")"
  fi
  return 1
}

check_cmake_package GTest GTestConfig.cmake required googletest || true
have_benchmark=0
check_cmake_package benchmark benchmarkConfig.cmake optional benchmark && have_benchmark=1
check_cmake_package fmt fmt-config.cmake required fmt || true
check_cmake_package nlohmann_json nlohmann_jsonConfig.cmake required json nlohmann_json || true
check_cmake_package CLI11 CLI11Config.cmake required CLI11 cli11 || true

if hit="$(find_first stb_image_write.h)"; then say "$(printf '%-14s found   %s' stb "$hit")"
else missing+=("stb: no stb_image_write.h (put it in third_party_src/prefix/include/stb/)"); fi
if hit="$(find_first cblas.h)"; then say "$(printf '%-14s found   %s' cblas.h "$hit")"
else missing+=("OpenBLAS: no cblas.h (put it in third_party_src/prefix/include/)"); fi
if hit="$(find_first 'libopenblas.so*')"; then say "$(printf '%-14s found   %s' libopenblas "$hit")"
else missing+=("OpenBLAS: no libopenblas.so (put it in third_party_src/prefix/lib/)"); fi

# cuDNN: the toolkit, $CUDNN_ROOT, or the Python wheel.
cudnn_include="" cudnn_lib=""
for dir in "${CUDNN_ROOT:-}" "$CUDA_HOME" /usr /usr/local; do
  [[ -n "$dir" ]] || continue
  for inc in "$dir/include" "$dir/include/x86_64-linux-gnu"; do [[ -f "$inc/cudnn.h" ]] && { cudnn_include="$inc"; break; }; done
  for lib in "$dir/lib64" "$dir/lib" "$dir/lib/x86_64-linux-gnu"; do
    compgen -G "$lib/libcudnn.so*" >/dev/null && { cudnn_lib="$lib"; break; }
  done
  [[ -n "$cudnn_include" && -n "$cudnn_lib" ]] && break
  cudnn_include="" cudnn_lib=""
done
if [[ -z "$cudnn_lib" ]] && command -v python3 >/dev/null; then
  wheel="$(python3 -c 'import importlib.util as u; s = u.find_spec("nvidia.cudnn"); print(list(s.submodule_search_locations)[0] if s else "")' 2>/dev/null || true)"
  if [[ -n "$wheel" && -f "$wheel/include/cudnn.h" ]] && compgen -G "$wheel/lib/libcudnn.so*" >/dev/null; then
    cudnn_include="$wheel/include" cudnn_lib="$wheel/lib"
  fi
fi
CUDNN_ARGS=()
# cuBLAS: the toolkit's, else the nvidia-cublas Python wheel's (PyTorch's), handed to CMake's
# FindCUDAToolkit through its cache variables and the headers' folder.
cublas_wheel_lib=""
if ! compgen -G "$CUDA_HOME/lib64/libcublas.so*" >/dev/null && ! compgen -G "$CUDA_HOME/targets/x86_64-linux/lib/libcublas.so*" >/dev/null; then
  if command -v python3 >/dev/null; then
    for root in $(python3 -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null || true); do
      hit="$(find "$root" -maxdepth 4 -name 'libcublas.so.*' -print -quit 2>/dev/null || true)"
      [[ -n "$hit" ]] && { cublas_wheel_lib="$(dirname "$hit")"; break; }
    done
  fi
  if [[ -n "$cublas_wheel_lib" && -f "$cublas_wheel_lib/../include/cublas_v2.h" ]]; then
    shim="$DEPS/cublas"
    mkdir -p "$shim"
    for name in cublas cublasLt; do
      sos=("$cublas_wheel_lib"/lib$name.so.*)
      ln -sfn "${sos[0]}" "$shim/lib$name.so"
    done
    inc="$(cd "$cublas_wheel_lib/../include" && pwd)"
    CUDNN_ARGS+=(-DCUDA_cublas_LIBRARY="$shim/libcublas.so" -DCUDA_cublasLt_LIBRARY="$shim/libcublasLt.so"
      -DCMAKE_CXX_FLAGS="-isystem $inc" -DCMAKE_CUDA_FLAGS="-isystem $inc")
    say "$(printf '%-14s found   %s (Python wheel)' cuBLAS "$cublas_wheel_lib")"
  else
    missing+=("cuBLAS: no libcublas in $CUDA_HOME/lib64 nor in an nvidia-cublas Python wheel")
  fi
else
  say "$(printf '%-14s found   %s' cuBLAS "$CUDA_HOME")"
fi
if [[ -n "$cudnn_lib" ]]; then
  say "$(printf '%-14s found   %s, %s' cuDNN "$cudnn_include" "$cudnn_lib")"
  # A wheel ships only libcudnn.so.9; CMake's find_library wants the unversioned name.
  shim="$DEPS/cudnn"
  mkdir -p "$shim/lib"
  ln -sfn "$cudnn_include" "$shim/include"
  cudnn_sos=("$cudnn_lib"/libcudnn.so*)
  ln -sfn "${cudnn_sos[0]}" "$shim/lib/libcudnn.so"
  CUDNN_ARGS+=(-DCUDNN_ROOT="$shim")
else
  missing+=("cuDNN: no cudnn.h + libcudnn.so in $CUDA_HOME, \$CUDNN_ROOT or the nvidia-cudnn Python wheel")
fi

if ((${#missing[@]})); then
  say ""
  say "MISSING — nothing was built:"
  for m in "${missing[@]}"; do say "  - $m"; done
  exit 2
fi

# The runtime finds cuDNN's sub-libraries (it dlopens them), the carried OpenBLAS and the
# built dependencies through this path.
export LD_LIBRARY_PATH="${cudnn_lib:+$cudnn_lib:}${cublas_wheel_lib:+$cublas_wheel_lib:}$PREFIX/lib:$PREFIX/lib64:$SRC/prefix/lib:$SRC/prefix/lib/x86_64-linux-gnu:$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- 3. build the dependencies from source -----------------------------------------------------
section "dependencies from source"
# CMAKE_POLICY_VERSION_MINIMUM: CMake 4 (pip's) refuses projects that ask for a policy level
# below 3.5, as older releases of these libraries do; older CMake ignores the variable.
build_source() {  # NAME CMAKE-OPTIONS...
  local name="$1" src="${source_dir[$1]:-}"
  shift
  [[ -n "$src" ]] || return 0
  local stamp="$DEPS/$name.installed"
  [[ -f "$stamp" ]] && { echo "$name: already installed"; return 0; }
  echo "$name: building from $src"
  echo "==== $name ($src)" >>"$LOGS/deps.log"
  if ! {
    cmake -S "$src" -B "$DEPS/build-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
      -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
      -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "$@" &&
      cmake --build "$DEPS/build-$name" -j "$JOBS" &&
      cmake --install "$DEPS/build-$name"
  } >>"$LOGS/deps.log" 2>&1; then
    echo "$name: build failed; the end of $LOGS/deps.log:"
    tail -30 "$LOGS/deps.log"
    return 1
  fi
  touch "$stamp"
}
t0=$SECONDS
: >"$LOGS/deps.log"
deps_ok=PASS
{
  build_source GTest -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON &&
    build_source benchmark -DBENCHMARK_ENABLE_TESTING=OFF -DBENCHMARK_ENABLE_GTEST_TESTS=OFF \
      -DBENCHMARK_ENABLE_WERROR=OFF -DBENCHMARK_ENABLE_INSTALL=ON &&
    build_source fmt -DFMT_TEST=OFF -DFMT_DOC=OFF -DFMT_INSTALL=ON &&
    build_source nlohmann_json -DJSON_BuildTests=OFF -DJSON_Install=ON &&
    build_source CLI11 -DCLI11_BUILD_TESTS=OFF -DCLI11_BUILD_EXAMPLES=OFF -DCLI11_BUILD_DOCS=OFF
} || deps_ok=FAIL
record "dependencies" "$deps_ok" $((SECONDS - t0))

print_summary() {
  section "summary"
  for line in "${results[@]}"; do say "$line"; done
}
if [[ "$deps_ok" != PASS ]]; then print_summary; exit 1; fi

# ---- 4. configure and build --------------------------------------------------------------------
section "configure"
arch="${LETHE_CUDA_ARCHITECTURES:-}"
if [[ -z "$arch" ]] && command -v nvidia-smi >/dev/null; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  [[ "$cap" =~ ^[0-9]+$ ]] && arch="$cap"
fi
arch="${arch:-80;90}"
bench_flag=OFF
((have_benchmark)) && bench_flag=ON
t0=$SECONDS
status=PASS
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLETHE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DLETHE_CUDA_ARCHITECTURES="$arch" -DLETHE_BUILD_BENCH="$bench_flag" \
  -DCMAKE_PREFIX_PATH="$PREFIX;$SRC/prefix" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${CUDNN_ARGS[@]}" \
  >"$LOGS/configure.log" 2>&1 || status=FAIL
record "configure (sm $arch)" "$status" $((SECONDS - t0))
if [[ "$status" != PASS ]]; then
  tail -40 "$LOGS/configure.log"
  print_summary
  exit 1
fi

section "build"
t0=$SECONDS
status=PASS
# Only what the steps run: the tools and the fuzz or MPI helpers stay unbuilt.
targets=(--target lethe lethe_tests)
((have_benchmark)) && targets+=(lethe_bench)
cmake --build "$BUILD" -j "$JOBS" "${targets[@]}" >"$LOGS/build.log" 2>&1 || status=FAIL
record "build" "$status" $((SECONDS - t0))
if [[ "$status" != PASS ]]; then
  grep -E -m 40 "error|Error|FAILED" "$LOGS/build.log" || tail -40 "$LOGS/build.log"
  print_summary
  exit 1
fi

# ---- 5. tests and benchmarks -------------------------------------------------------------------
failed=0
# The lines of a GoogleTest log that matter: totals, failures with their messages, and why
# tests skipped (the first reason; they usually share it).
gtest_digest() {
  grep -E '^\[==========\] .* ran|^\[  PASSED  \]|^\[  SKIPPED \] [0-9]+ tests?,|^\[  FAILED  \]' "$1" || true
  grep -A4 -E ': Failure$' "$1" | head -60 || true
  local reason
  reason="$(grep -m1 -A1 -E ': Skipped$' "$1" | tail -1 || true)"
  [[ -n "$reason" ]] && echo "first skip reason: $reason"
  return 0
}
# "N passed, N skipped, N failed" from a GoogleTest log.
gtest_counts() {
  local passed skipped failed
  passed="$(grep -oE '^\[  PASSED  \] [0-9]+' "$1" | grep -oE '[0-9]+$' || echo 0)"
  skipped="$(grep -oE '^\[  SKIPPED \] [0-9]+ tests?,' "$1" | grep -oE '[0-9]+' || echo 0)"
  failed="$(grep -oE '^ *[0-9]+ FAILED TESTS?' "$1" | grep -oE '[0-9]+' || echo 0)"
  echo "${passed} passed, ${skipped} skipped, ${failed} failed"
}

# The time budget: fits NAME ESTIMATE says whether ESTIMATE seconds are left, and records the
# step as skipped when they are not.
budget="${LETHE_GPU_BUDGET:-540}"
left() { echo $((budget - SECONDS)); }
fits() {
  ((budget == 0)) && return 0
  (($(left) >= $2)) && return 0
  record "$1" SKIP 0 "budget: ${2} s estimated, $(left) s left of ${budget}"
  return 1
}
# The longest a step may run: 10 minutes, or what is left of the budget.
step_limit() {
  local l=600
  ((budget > 0 && $(left) < l)) && l=$(left)
  ((l < 30)) && l=30
  echo "$l"
}

# run_step NAME LOG DIGEST COMMAND...: runs it (10 minutes at most) and prints its digest.
run_step() {
  local name="$1" log="$2" digest="$3"
  shift 3
  section "$name"
  local t0=$SECONDS rc=0 detail=""
  if declare -F "$1" >/dev/null; then
    "$@" >"$log" 2>&1 || rc=$?  # a function of this script: bounded by its own commands
  else
    timeout "$(step_limit)" "$@" >"$log" 2>&1 || rc=$?
  fi
  if [[ "$digest" == none ]]; then
    :
  elif [[ "$digest" == gtest ]]; then
    gtest_digest "$log"
    if grep -qE '^\[==========\] .* ran' "$log"; then
      detail="$(gtest_counts "$log")"
    else
      detail="did not finish (exit $rc) in: $(grep -E '^\[ RUN      \]' "$log" | tail -1 | sed 's/^\[ RUN      \] //')"
    fi
  else
    grep -E '^[A-Za-z_].*[0-9.]+ (ns|us|ms|s) ' "$log" | head -60 || true
  fi
  if ((rc != 0)); then
    echo "($name exited with $rc; the end of $log:)"
    tail -15 "$log"
    failed=1
    record "$name" FAIL $((SECONDS - t0)) "$detail"
  else
    record "$name" PASS $((SECONDS - t0)) "$detail"
  fi
}

TESTS="$BUILD/lethe_tests"
LETHE="$BUILD/lethe"
BENCH="$BUILD/lethe_bench"
have_mnist=0
[[ -f "$ROOT/data/mnist/train-images-idx3-ubyte" ]] && have_mnist=1
# The tests that read real MNIST find it here (they skip without it).
((have_mnist)) && export LETHE_MNIST_DIR="$ROOT/data/mnist"
have_torch=0
# LETHE_GPU_SKIP_PEERS=1 leaves the PyTorch comparison out (a rerun whose peers' figures exist).
if [[ "${LETHE_GPU_SKIP_PEERS:-0}" != 1 ]] && command -v python3 >/dev/null &&
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  have_torch=1
fi

# -- the backend harness first: every entry of kernels/backend.inc, small and full-width
# ResNet-18 shapes, on the GPU against the CPU (tests/kernels/backend_ops/; its CPU-against-double
# half needs no GPU and is left to the work machines). LETHE_CUDNN_LOG=1 logs cuDNN's candidates and
# the algorithm taken for each convolution shape; "(fallback)" marks a shape where no candidate
# was acceptable (kernels/cuda/conv.cpp) --
if [[ -x "$TESTS" ]]; then
  run_step "backend harness" "$LOGS/backend-harness.log" gtest env LETHE_CUDNN_LOG=1 "$TESTS" \
    --gtest_filter='BackendOpsTable.*:BackendOpsCuda.*'
  say "cuDNN choices: $(grep -c '^cudnn ' "$LOGS/backend-harness.log" || true) logged, $(grep -c '^cudnn .*(fallback)' "$LOGS/backend-harness.log" || true) fallbacks (in $LOGS/backend-harness.log)"
fi

# -- the CUDA tests, against their CPU twins --
if [[ -x "$TESTS" ]]; then
  run_step "CUDA tests" "$LOGS/cuda-tests.log" gtest "$TESTS" --gtest_filter='*Cuda*:-BackendOps*'
  # The engine's tests again with the convolutions' tiled kernel in place of the convolved
  # queries and the batched GEMMs (nn/per_example_kernels.h), which take its requests by default.
  run_step "CUDA engine, tiled kernel" "$LOGS/cuda-engine-tiled.log" gtest env LETHE_CONV_DOTS=0 LETHE_CONV_GEMM=0 \
    "$TESTS" --gtest_filter='CudaPerExampleEngine.*'
else
  say "lethe_tests was not built"
  record "tests" FAIL 0
  failed=1
fi

# -- EWC-influence at dataset scale: ResNet-18 on 50,000 generated CIFAR-format images (FP32, then
# TF32 reusing the data and checkpoint), the MNIST CNN on all 60,000 MNIST images --
if [[ -x "$LETHE" ]] && ((have_mnist)); then
  if fits "dataset scale" 150; then
    dataset_scale() {
      timeout "$(step_limit)" bash "$ROOT/bench/dataset-scale.sh" --device cuda --lethe "$LETHE" \
        --dir "$BUILD/dataset-scale" &&
        timeout "$(step_limit)" bash "$ROOT/bench/dataset-scale.sh" --device cuda --lethe "$LETHE" \
          --dir "$BUILD/dataset-scale" --tf32 --models resnet18
    }
    run_step "dataset scale" "$LOGS/dataset-scale.log" none dataset_scale
    grep -E '^\| (mnist-cnn|resnet18) |: ewc .* s against' "$LOGS/dataset-scale.log" | tee -a "$SUMMARY" || true
  fi
else
  record "dataset scale" SKIP 0 "no lethe binary or no data/mnist"
fi

# -- lethe against torch.func and torch on this GPU, back to back, with a table of ratios --
if [[ -x "$BENCH" ]] && ((have_torch)); then
  quick=()
  ((budget > 0 && $(left) < 400)) && quick=(--quick)
  if fits "compare vs torch (gpu)" 120; then
    run_step "compare vs torch (gpu)" "$LOGS/compare-gpu.log" none \
      env LETHE_BUILD_DIR="$BUILD" LETHE_COMPARE_LOG="$LOGS/compare-gpu" bash "$ROOT/bench/compare-gpu.sh" "${quick[@]}"
    sed -n '/self-check \(passed\|FAILED\)/p; /^== PyTorch \/ lethe/,$p' "$LOGS/compare-gpu.log" | tee -a "$SUMMARY"
  fi
else
  record "compare vs torch (gpu)" SKIP 0 "no lethe_bench or no python3 torch with CUDA"
fi

# -- the CUDA tests again under compute-sanitizer: memcheck (out-of-bounds and misaligned device
# accesses, failed API calls) and racecheck (shared-memory hazards, so only the tests of the
# hand-written kernels), with LETHE_CUDA_SYNC=1: the backend waits after every launch, so an
# error names the kernel that launched it (kernels/cuda_sync.h). The test that asks for a
# petabyte on purpose stays out of memcheck, which reports every failed allocation, and so do
# the one whose child process faults on purpose, the upload test (a timing question, behind
# milliseconds of busy GEMMs that memcheck would stretch) and the backend harness, whose full-width
# ResNet-18 cases would take much of memcheck's time limit (LETHE_SANITIZER_FILTER=BackendOpsCuda.*
# runs it alone). No leak check: the caching allocator keeps its blocks
# until exit by design. Both slow kernels down many times over, so each run has its own, shorter
# time limit. --
SANITIZER="$(command -v compute-sanitizer || true)"
for candidate in "$CUDA_HOME/bin/compute-sanitizer" "$CUDA_HOME/compute-sanitizer/compute-sanitizer"; do
  [[ -z "$SANITIZER" && -x "$candidate" ]] && SANITIZER="$candidate"
done
if [[ -x "$TESTS" && -n "$SANITIZER" ]]; then
  sanitizer_timeout="${LETHE_SANITIZER_TIMEOUT:-240}"
  declare -A sanitizer_filter=(
    [memcheck]="${LETHE_SANITIZER_FILTER:-*Cuda*:-CudaAllocator.OutOfMemoryNamesTheRequestedSize:CudaSync.AFaultNamesItsKernel:CudaCopies.AnUploadLeavesTheHostBufferFreeOnReturn:BackendOps*}"
    [racecheck]="${LETHE_RACECHECK_FILTER:-CudaPerExample.*:CudaReduce*:CudaNorm*:CudaPool*:CudaLoss*:CudaElementwise*:CudaOptim*:CudaConv.Im2col*:CudaDescent.*:CudaPerExampleEngine.ResNetKfacFactorsMatchTheCpu:CudaEigenbasis.*}"
  )
  declare -A sanitizer_estimate=([memcheck]=150 [racecheck]=90)
  for tool in memcheck racecheck; do
    fits "CUDA tests ($tool)" "${sanitizer_estimate[$tool]}" || continue
    limit=$(step_limit)
    ((limit > sanitizer_timeout)) && limit=$sanitizer_timeout
    run_step "CUDA tests ($tool)" "$LOGS/cuda-$tool.log" gtest timeout "$limit" env LETHE_CUDA_SYNC=1 \
      "$SANITIZER" --tool "$tool" --error-exitcode 3 "$TESTS" --gtest_filter="${sanitizer_filter[$tool]}"
    grep -m1 -E '^========= (ERROR|RACECHECK) SUMMARY' "$LOGS/cuda-$tool.log" || true
  done
elif [[ -x "$TESTS" ]]; then
  say "compute-sanitizer not found (PATH, $CUDA_HOME/bin, $CUDA_HOME/compute-sanitizer): memcheck and racecheck skipped"
  record "CUDA tests (memcheck)" SKIP 0
  record "CUDA tests (racecheck)" SKIP 0
fi

# -- one MNIST epoch (3000 examples, batch 64) through the binary on each device; then ewc
# scores of a smaller D (1000 examples, label noise) from a GPU-trained model on each device --
if [[ -x "$LETHE" ]] && ((have_mnist)); then
  if fits "MNIST end to end" 60; then
    end_to_end() {
      local dev out="$BUILD/e2e"
      mkdir -p "$out"
      for dev in cuda cpu; do
        "$LETHE" --device "$dev" --seed 0 train --data "$ROOT/data/mnist" --subset 3000 --epochs 1 --batch 64 \
          --out "$out/epoch-$dev.safetensors" --json >"$out/epoch-$dev.json" || return 1
        echo "epoch on $dev: $(tr -d ' \n' <"$out/epoch-$dev.json" | grep -oE '"epoch_seconds":\[[0-9.e-]+\]') s," \
          "test accuracy $(tr -d ' \n' <"$out/epoch-$dev.json" | grep -oE '"test_accuracy":[0-9.]+')"
      done
      "$LETHE" --device cuda --seed 0 train --data "$ROOT/data/mnist" --subset 1000 --noise label --epochs 3 \
        --out "$out/noisy.safetensors" --json >"$out/noisy.json" || return 1
      for dev in cuda cpu; do
        local t0=$SECONDS
        "$LETHE" --device "$dev" --seed 0 identify --model-file "$out/noisy.safetensors" --method ewc \
          --out "$out/ewc-$dev.csv" --json >"$out/ewc-$dev.json" || return 1
        echo "ewc identify on $dev: $((SECONDS - t0)) s"
      done
      # The two rankings: how much of the top 100 they have in common.
      comm -12 <(awk -F, 'NR > 1 && $NF <= 100 {print $1}' "$out/ewc-cuda.csv" | sort) \
        <(awk -F, 'NR > 1 && $NF <= 100 {print $1}' "$out/ewc-cpu.csv" | sort) | wc -l |
        awk '{printf "ewc top-100 overlap, GPU vs CPU: %d of 100\n", $1}'
    }
    run_step "MNIST end to end" "$LOGS/e2e.log" none end_to_end
    cat "$LOGS/e2e.log"
    grep -E '^(epoch on|ewc)' "$LOGS/e2e.log" >>"$SUMMARY" || true
  fi
else
  record "MNIST end to end" SKIP 0 "no lethe binary or no data/mnist"
fi

# -- every test, GPU present: split into shards that run side by side (GoogleTest's own
# sharding), their logs concatenated for the digest --
if [[ -x "$TESTS" ]] && fits "all tests" 180; then
  shards=$((JOBS < 8 ? JOBS : 8))
  ((shards >= 1)) || shards=1
  run_all_shards() {
    local k pids=() rc=0 limit
    limit=$(step_limit)
    for ((k = 0; k < shards; ++k)); do
      GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$k OMP_NUM_THREADS=$(((JOBS + shards - 1) / shards)) \
        timeout "$limit" "$TESTS" >"$LOGS/all-tests.$k.log" 2>&1 &
      pids+=($!)
    done
    for k in "${!pids[@]}"; do wait "${pids[$k]}" || rc=1; done
    return $rc
  }
  run_step "all tests ($shards shards)" "$LOGS/all-tests.log" none run_all_shards
  all_passed=0 all_skipped=0 all_failed=0 all_finished=1
  for ((k = 0; k < shards; ++k)); do
    log="$LOGS/all-tests.$k.log"
    grep -qE '^\[==========\] .* ran' "$log" || { all_finished=0; echo "shard $k did not finish; its end:"; tail -5 "$log"; }
    read -r p _ s _ f _ <<<"$(gtest_counts "$log" | tr -d ',')"
    all_passed=$((all_passed + p)) all_skipped=$((all_skipped + s)) all_failed=$((all_failed + f))
    grep -A4 -E ': Failure$' "$log" | head -40 || true
    grep -E '^\[  FAILED  \] [A-Za-z]' "$log" || true
  done
  results[-1]="${results[-1]}$all_passed passed, $all_skipped skipped, $all_failed failed$( ((all_finished)) || echo ', a shard did not finish')"
fi

# -- the benchmarks: short runs, a smoke run with figures, not a careful measurement (the GPU's
# per-example and training figures come from the comparison above) --
if [[ -x "$BENCH" ]]; then
  if fits "benchmarks" 120; then
    # shellcheck disable=SC2086
    run_step "benchmarks" "$LOGS/bench.log" bench "$BENCH" --benchmark_min_time=0.05 \
      --benchmark_filter="${LETHE_BENCH_FILTER:-BM_Cuda}" ${LETHE_BENCH_ARGS:-}
  fi
  # The backend harness's perf mode on its full-width ResNet-18 cases: each entry's GFLOP/s or
  # GB/s against this GPU's measured SGEMM peak and copy bandwidth (--benchmark_filter=BackendOps/Cuda
  # for every case).
  if fits "backend perf" 60; then
    run_step "backend perf" "$LOGS/backend-perf.log" bench "$BENCH" --benchmark_min_time=0.02 \
      --benchmark_filter='BackendOps/Cuda/.*ResNet'
  fi
  # The convolutions' three GPU paths for per-example quantities, one after the other on the same
  # benchmarks: the default (convolved queries, batched GEMMs), the GEMMs alone
  # (LETHE_CONV_DOTS=0), the tiled kernel alone (both off). See docs/architecture.md.
  if fits "per-example paths" 90; then
    per_example_paths() {
      local setting
      for setting in "" "LETHE_CONV_DOTS=0" "LETHE_CONV_DOTS=0 LETHE_CONV_GEMM=0"; do
        echo "== paths: ${setting:-default} =="
        # shellcheck disable=SC2086
        timeout 120 env $setting "$BENCH" --benchmark_min_time=0.2 --benchmark_filter='PerExample.*device:1' || return 1
      done
    }
    run_step "per-example paths" "$LOGS/per-example-paths.log" none per_example_paths
    grep -E '^== paths|device:1' "$LOGS/per-example-paths.log" | tee -a "$SUMMARY" || true
  fi
else
  record "benchmarks" SKIP 0
fi

# -- attribution at query scale: CIFAR-10 ResNet-9, 50,000 generated images, 2,000 queries,
# EK-FAC's phases (bench/attribute-scale.sh), against the PyTorch peer when torch is here: the
# last step, run only with the time for it --
if [[ -x "$LETHE" ]]; then
  if fits "attribute scale" 240; then
    peer=()
    ((have_torch)) || peer=(--no-peer)
    run_step "attribute scale" "$LOGS/attribute-scale.log" none \
      timeout "$(step_limit)" bash "$ROOT/bench/attribute-scale.sh" --device cuda --cases resnet9 --lethe "$LETHE" \
      --dir "$BUILD/attribute-scale" "${peer[@]}"
    grep -E '^\|' "$LOGS/attribute-scale.log" | tee -a "$SUMMARY" || true
  fi
else
  record "attribute scale" SKIP 0 "no lethe binary"
fi

print_summary
say "logs: $LOGS"
exit "$failed"
