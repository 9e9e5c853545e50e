// The CUDA backend's random projections (kernels/backend.inc): the CPU's bits (kernels/jl_bits.h)
// made on the device, a block of R at a time (jl::block_rows: tens of MB, so a projection of a
// large model is a few thousand launches, not a hundred thousand), multiplied by cuBLAS, and
// the blocks' products summed in double as on the CPU.
#include <algorithm>
#include <cmath>

#include "kernels/backend.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"
#include "kernels/jl_bits.h"

namespace lethe::cuda {
namespace {

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

// acc [n, k] (contiguous) from out's rows ld_out apart, or zero.
struct RowsToDouble {
  const float* out;
  int64_t k, ld_out;
  bool accumulate;
  double* acc;
  __device__ void operator()(int64_t i) const {
    acc[i] = accumulate ? static_cast<double>(out[(i / k) * ld_out + i % k]) : 0.0;
  }
};

// out's rows from acc, rounded once.
struct RowsFromDouble {
  const double* acc;
  int64_t k, ld_out;
  float* out;
  __device__ void operator()(int64_t i) const { out[(i / k) * ld_out + i % k] = static_cast<float>(acc[i]); }
};

}  // namespace

void jl_block(uint64_t seed, int64_t row0, int64_t rows, int64_t k, float* out) {
  if (rows <= 0 || k <= 0) return;
  launch_map("jl_block", rows * k, JlEntries{seed, row0, k, 1.0f / std::sqrt(static_cast<float>(k)), out});
}

void jl_project(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                int64_t ld_out, bool accumulate, int64_t block_rows) {
  if (n <= 0 || k <= 0) return;
  const int64_t rows_max = jl::block_rows(p, k, block_rows);
  DeviceScratch acc(static_cast<size_t>(n * k) * sizeof(double));
  launch_map("jl_project start", n * k, RowsToDouble{out, k, ld_out, accumulate, acc.as<double>()});
  if (p > 0) {
    DeviceScratch block(static_cast<size_t>(std::min(rows_max, p) * k) * sizeof(float));
    DeviceScratch part(static_cast<size_t>(n * k) * sizeof(float));
    for (int64_t r0 = 0; r0 < p; r0 += rows_max) {
      const int64_t rows = std::min(rows_max, p - r0);
      jl_block(seed, r0, rows, k, block.as<float>());
      gemm(false, false, n, k, rows, 1.0f, g + r0, ld_g, block.as<float>(), k, 0.0f, part.as<float>(), k);
      add_to_double(n * k, part.as<float>(), acc.as<double>());
    }
  }
  launch_map("jl_project finish", n * k, RowsFromDouble{acc.as<double>(), k, ld_out, out});
}

}  // namespace lethe::cuda
