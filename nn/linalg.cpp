#include "nn/linalg.h"

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

}  // namespace lethe
