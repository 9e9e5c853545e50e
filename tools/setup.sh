#!/usr/bin/env bash
# Installs lethe's build dependencies (Debian 12 packages) and builds it into build/.
#   bash tools/setup.sh            # Release build, CUDA backend when a toolkit is found
#   LETHE_CUDA=OFF bash tools/setup.sh
# Safe to run again: installs only what is missing, rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config libopenblas-openmp-dev libdnnl-dev libcli11-dev nlohmann-json3-dev
          libstb-dev libfmt-dev googletest libgtest-dev libbenchmark-dev
          libopenmpi-dev openmpi-bin  # the MPI backend and mpirun (docs/scale-out.md)
          clang libclang-rt-dev libomp-dev)  # the last three: libFuzzer and clang's OpenMP (tools/fuzz.sh)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir=${LETHE_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLETHE_CUDA="${LETHE_CUDA:-AUTO}" \
  ${LETHE_CMAKE_ARGS:-} >/dev/null
jobs=$(nproc)
echo "setup: building in $build_dir with $jobs jobs" >&2
ninja -C "$build_dir" -j "$jobs"
