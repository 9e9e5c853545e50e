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

// C [m, n] = op(X) op(Y) + beta C on host float arrays (row-major, no padding).
void matmul_f32(bool trans_x, bool trans_y, int64_t m, int64_t n, int64_t k, const float* x, const float* y, float beta,
                float* c);

// out [n, k] = g [n, p] · R for the seeded Johnson–Lindenstrauss matrix R of
// kernels/backend.inc (jl_block: ±1/√k entries, regenerated block by block, never stored), on host
// arrays; with `accumulate`, out += g · R.
void jl_project(const float* g, int64_t n, int64_t p, int64_t k, uint64_t seed, float* out, bool accumulate = false);
// The same with g's rows ld_g apart and out's ld_out apart (a layer's segment of θ, say).
void jl_project_strided(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                        int64_t ld_out);
// Rows [row0, row0 + rows) of that matrix, [rows, k].
std::vector<float> jl_rows(uint64_t seed, int64_t row0, int64_t rows, int64_t k);

}  // namespace lethe
