#pragma once
// Double-precision dense linear algebra on the host, on the BLAS and LAPACK lethe configured
// (kernels/cpu/blas.h): what KFAC's eigenbases and products need. Row-major throughout.
#include <cstdint>

namespace lethe::cpu {

// Symmetric eigendecomposition (LAPACK dsyevd) of a (n x n, row-major, overwritten): its
// columns become the eigenvectors, w [n] the eigenvalues in ascending order.
void symmetric_eigen(int64_t n, double* a, double* w);

// C = alpha op(A) op(B) + beta C, as gemm in kernels/backend.inc, in double.
void dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
           const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace lethe::cpu
