// The CUDA backend's random projections (kernels/backend.inc): the CPU's bits (kernels/jl_bits.h)
// made on the device, a block of R at a time, and multiplied by cuBLAS.
#include <algorithm>
#include <cmath>

#include "kernels/backend.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"
#include "kernels/jl_bits.h"

namespace lethe::cuda {
namespace {

constexpr int64_t kBlockRows = 256;  // rows of R made at a time, as on the CPU

// One entry of R per thread: row (i / k) of the block, column (i % k). Neighbouring threads share
// a row and mostly a 64-bit word, so the hash is recomputed per entry rather than cached.
struct JlEntries {
  uint64_t seed;
  int64_t row0, k;
  float scale;
  float* out;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / k, c = i % k;
    out[i] = jl::entry(jl::row_key(seed, row0 + r), c, scale);
  }
};

struct Fill {
  float value;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = value; }
};

}  // namespace

void jl_block(uint64_t seed, int64_t row0, int64_t rows, int64_t k, float* out) {
  if (rows <= 0 || k <= 0) return;
  launch_map("jl_block", rows * k, JlEntries{seed, row0, k, 1.0f / std::sqrt(static_cast<float>(k)), out});
}

void jl_project(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                int64_t ld_out, bool accumulate) {
  if (n <= 0 || k <= 0) return;
  if (p == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < n; ++i) launch_map("jl_project zero", k, Fill{0.0f, out + i * ld_out});
    return;
  }
  DeviceScratch block(static_cast<size_t>(std::min(kBlockRows, p) * k) * sizeof(float));
  bool first = !accumulate;
  for (int64_t r0 = 0; r0 < p; r0 += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, p - r0);
    jl_block(seed, r0, rows, k, block.as<float>());
    gemm(false, false, n, k, rows, 1.0f, g + r0, ld_g, block.as<float>(), k, first ? 0.0f : 1.0f, out, ld_out);
    first = false;
  }
}

}  // namespace lethe::cuda
