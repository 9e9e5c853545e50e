// The CPU's random projections (kernels/backend.inc).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/jl_bits.h"

namespace lethe::cpu {

void jl_block(uint64_t seed, int64_t row0, int64_t rows, int64_t k, float* out) {
  const float s = 1.0f / std::sqrt(static_cast<float>(k));
  const int64_t words = (k + 63) / 64;
#pragma omp parallel for schedule(static) if (rows * k > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t row_key = jl::row_key(seed, row0 + r);
    float* o = out + r * k;
    for (int64_t w = 0; w < words; ++w) {
      const uint64_t bits = jl::word(row_key, w);
      const int64_t c0 = w * 64, c1 = c0 + 64 < k ? c0 + 64 : k;
      for (int64_t c = c0; c < c1; ++c) o[c] = (bits >> (c - c0)) & 1 ? s : -s;
    }
  }
}

void jl_project(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                int64_t ld_out, bool accumulate, int64_t block_rows) {
  if (n <= 0 || k <= 0) return;
  // Each block's product in float, the blocks' sum in double (kernels/backend.inc).
  std::vector<double> acc(static_cast<size_t>(n * k), 0.0);
  if (accumulate)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) acc[i * k + c] = out[i * ld_out + c];
  const int64_t rows_max = jl::block_rows(p, k, block_rows);
  std::vector<float> block(static_cast<size_t>(std::min(rows_max, p) * k)), part(static_cast<size_t>(n * k));
  for (int64_t r0 = 0; r0 < p; r0 += rows_max) {
    const int64_t rows = std::min(rows_max, p - r0);
    jl_block(seed, r0, rows, k, block.data());
    gemm(false, false, n, k, rows, 1.0f, g + r0, ld_g, block.data(), k, 0.0f, part.data(), k);
    add_to_double(n * k, part.data(), acc.data());
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c) out[i * ld_out + c] = static_cast<float>(acc[i * k + c]);
}

}  // namespace lethe::cpu
