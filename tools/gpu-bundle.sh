#!/usr/bin/env bash
# Packs what tools/gpu-check.sh needs on a GPU machine that has the CUDA toolkit, CMake and ninja
# but no package registry, from this Debian 12 machine's installed packages (tools/setup.sh puts
# them here), into one archive:
#   gpu-carry/bundle.tar.gz
#     third_party_src/googletest/   GoogleTest's source (/usr/src/googletest), built there
#     third_party_src/prefix/       headers, CMake package files and libraries of fmt, nlohmann-json,
#                                   CLI11, stb, Google Benchmark, oneDNN and OpenBLAS (with libgfortran and
#                                   libquadmath, which it needs at run time), in Debian's layout
#     data/mnist/                   the four MNIST IDX files, when data/mnist has them
# On the GPU machine, from the repository root:
#   tar xzf gpu-carry/bundle.tar.gz && bash tools/gpu-check.sh
# (with the device tool: carry ["gpu-carry"]). gpu-carry/ is ignored by git.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT_DIR="$ROOT/gpu-carry"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
PREFIX="$STAGE/third_party_src/prefix"
mkdir -p "$PREFIX" "$OUT_DIR"

need() { [[ -e "$1" ]] || { echo "gpu-bundle: $1 is missing; run tools/setup.sh first" >&2; exit 2; }; }

# GoogleTest as source: its library must be built by the compiler that builds the tests.
need /usr/src/googletest/CMakeLists.txt
cp -a /usr/src/googletest "$STAGE/third_party_src/googletest"

# Everything a Debian package installed under /usr/include, /usr/lib or /usr/share/cmake, copied
# to the same place under the prefix, so the packages' CMake files (which locate themselves
# relative to their own folder) work there unchanged. Links are kept as links.
copy_package() {
  local pkg="$1" path
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    { echo "gpu-bundle: package $pkg is not installed; run tools/setup.sh first" >&2; exit 2; }
  while IFS= read -r path; do
    [[ -f "$path" || -L "$path" ]] || continue
    case "$path" in
      /usr/include/* | /usr/lib/* | /usr/share/cmake/* | /usr/share/cmake-*/*) ;;
      *) continue ;;
    esac
    case "$path" in */pkgconfig/* | */doc/*) continue ;; esac
    mkdir -p "$PREFIX$(dirname "${path#/usr}")"
    cp -a "$path" "$PREFIX${path#/usr}"
  done < <(dpkg -L "$pkg")
}
# oneDNN (the CPU convolutions) and the OpenCL loader its library links (it is never used on the CPU).
for pkg in libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libstb-dev libbenchmark-dev libbenchmark1debian \
           libdnnl-dev libdnnl2 ocl-icd-libopencl1; do
  copy_package "$pkg"
done

# OpenBLAS (the OpenMP build lethe links): Debian reaches it through alternatives links, so the
# real files go to plain places the project's CMake looks in: include/openblas/ and lib/.
blas_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
blas_inc=/usr/include/x86_64-linux-gnu/openblas-openmp
need "$blas_dir/libopenblas.so.0"
need "$blas_inc/cblas.h"
mkdir -p "$PREFIX/include/openblas" "$PREFIX/lib"
cp -L "$blas_inc"/*.h "$PREFIX/include/openblas/"
cp -L "$blas_dir/libopenblas.so.0" "$PREFIX/lib/libopenblas.so.0"
ln -sf libopenblas.so.0 "$PREFIX/lib/libopenblas.so"
for lib in libgfortran.so.5 libquadmath.so.0; do
  need "/lib/x86_64-linux-gnu/$lib"
  cp -L "/lib/x86_64-linux-gnu/$lib" "$PREFIX/lib/$lib"
done

# Real MNIST, for the training epoch on real data.
if [[ -f data/mnist/train-images-idx3-ubyte ]]; then
  mkdir -p "$STAGE/data/mnist"
  cp data/mnist/*-ubyte "$STAGE/data/mnist/"
else
  echo "gpu-bundle: data/mnist has no MNIST (lethe fetch-data mnist); the bundle goes without it" >&2
fi

tar czf "$OUT_DIR/bundle.tar.gz.part" -C "$STAGE" .
mv "$OUT_DIR/bundle.tar.gz.part" "$OUT_DIR/bundle.tar.gz"
echo "gpu-bundle: $(du -h "$OUT_DIR/bundle.tar.gz" | cut -f1) in $OUT_DIR/bundle.tar.gz"
