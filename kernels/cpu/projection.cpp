// The CPU's random projections (kernels/backend.inc).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/jl_bits.h"

namespace lethe::cpu {
namespace {

constexpr int64_t kBlockRows = 256;  // rows of R made at a time: 2 MiB at k = 2048

}  // namespace

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
                int64_t ld_out, bool accumulate) {
  if (n <= 0 || k <= 0) return;
  std::vector<float> block(static_cast<size_t>(std::min(kBlockRows, p) * k));
  bool first = !accumulate;
  for (int64_t r0 = 0; r0 < p; r0 += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, p - r0);
    jl_block(seed, r0, rows, k, block.data());
    gemm(false, false, n, k, rows, 1.0f, g + r0, ld_g, block.data(), k, first ? 0.0f : 1.0f, out, ld_out);
    first = false;
  }
  if (p == 0 && !accumulate)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) out[i * ld_out + c] = 0.0f;
}

}  // namespace lethe::cpu
