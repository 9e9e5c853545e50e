#pragma once
// Dense double-precision linear algebra on host matrices (row-major std::vector), for the
// curvature approximations built above the engine (KFAC's eigenbases and Kronecker products).
#include <cstdint>
#include <vector>

namespace lethe {

// Symmetric eigendecomposition: `a` (n x n) becomes the eigenvectors as columns; the eigenvalues
// go ascending into `w`.
void symmetric_eigen(int64_t n, std::vector<double>& a, std::vector<double>& w);

// C = op(X) op(Y) with op(X) m x k and op(Y) k x n.
std::vector<double> matmul_f64(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, const std::vector<double>& x,
                               const std::vector<double>& y);

}  // namespace lethe
