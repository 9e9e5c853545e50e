#include "nn/linalg.h"

#include "kernels/backend.h"
#include "kernels/cpu/linalg.h"
#include "util/error.h"

namespace lethe {

void symmetric_eigen(int64_t n, std::vector<double>& a, std::vector<double>& w) {
  LETHE_CHECK(n > 0 && static_cast<int64_t>(a.size()) == n * n, "symmetric_eigen: {} values for {}x{}", a.size(), n, n);
  w.assign(static_cast<size_t>(n), 0.0);
  cpu::symmetric_eigen(n, a.data(), w.data());
}

std::vector<double> matmul_f64(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, const std::vector<double>& x,
                               const std::vector<double>& y) {
  LETHE_CHECK(m > 0 && n > 0 && k > 0 && static_cast<int64_t>(x.size()) == m * k &&
                  static_cast<int64_t>(y.size()) == k * n,
              "matmul_f64: {} and {} values for ({} x {}) ({} x {})", x.size(), y.size(), m, k, k, n);
  std::vector<double> c(static_cast<size_t>(m * n));
  cpu::dgemm(trans_x, trans_y, m, n, k, 1.0, x.data(), trans_x ? m : k, y.data(), trans_y ? k : n, 0.0, c.data(), n);
  return c;
}

void matmul_f32(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, const float* x, const float* y, float beta,
                float* c) {
  LETHE_CHECK(m >= 0 && n >= 0 && k >= 0, "matmul_f32: negative size ({} x {}) ({} x {})", m, k, k, n);
  if (m == 0 || n == 0) return;
  cpu::gemm(trans_x, trans_y, m, n, k, 1.0f, x, trans_x ? m : k, y, trans_y ? k : n, beta, c, n);
}

void jl_project(const float* g, int64_t n, int64_t p, int64_t k, uint64_t seed, float* out, bool accumulate) {
  LETHE_CHECK(n >= 0 && p >= 0 && k >= 1, "jl_project: {} rows of {} values to {} dimensions", n, p, k);
  cpu::jl_project(g, n, p, p, k, seed, out, k, accumulate);
}

void jl_project_strided(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                        int64_t ld_out) {
  LETHE_CHECK(n >= 0 && p >= 0 && k >= 1 && ld_g >= p && ld_out >= k,
              "jl_project: {} rows of {} values (stride {}) to {} dimensions (stride {})", n, p, ld_g, k, ld_out);
  cpu::jl_project(g, n, p, ld_g, k, seed, out, ld_out, false);
}

std::vector<float> jl_rows(uint64_t seed, int64_t row0, int64_t rows, int64_t k) {
  LETHE_CHECK(row0 >= 0 && rows >= 0 && k >= 1, "jl_rows: rows [{}, {}) of {} columns", row0, row0 + rows, k);
  std::vector<float> out(static_cast<size_t>(rows * k));
  cpu::jl_block(seed, row0, rows, k, out.data());
  return out;
}

}  // namespace lethe
