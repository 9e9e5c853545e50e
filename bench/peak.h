#pragma once
// The machine's measured single-precision GEMM peak at the current thread count: the ceiling
// that lethe_bench's GFLOP/s figures are read against (their distance to the roofline).
#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/blas.h"

namespace lethe::bench {

// Best of three 3072^3 SGEMMs, measured once per process: on a 2-core AVX-512 Xeon, 1536^3
// reached 172 GFLOP/s and 3072^3 236 (OpenBLAS, both threads), so the larger is the ceiling.
inline double sgemm_peak_gflops() {
  static const double peak = [] {
    const int64_t n = 3072;
    std::vector<float> a(static_cast<size_t>(n * n), 0.5f), b(a.size(), 0.25f), c(a.size());
    cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n * n * n / best * 1e-9;
  }();
  return peak;
}

}  // namespace lethe::bench
