// Row-major GEMM through cuBLAS (CUDA twin of kernels/cpu/blas.h).
//
// cuBLAS is column-major. A row-major M x N matrix with leading dimension ld is, byte for byte,
// its N x M transpose in column-major order with the same ld, so C = op(A) op(B) in row-major
// is C^T = op(B)^T op(A)^T in column-major: call cuBLAS with the operands swapped (B first),
// M and N swapped, and each operand's transpose flag passed through unchanged.
//
// The 64-bit interface (cublasSgemm_64, looked up with the library: cublas_lib.h) takes sizes
// and leading dimensions past 2^31 without the CPU backend's 32-bit limit.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cublas_lib.h"
#include "kernels/cuda/kernels.h"

namespace lethe::cuda {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // With k == 0 cuBLAS still scales C by beta, which is what C = 0 + beta * C asks for.
  LETHE_CUBLAS_CHECK(
      cublas_lib().sgemm(context().cublas(), op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                          float* c, int64_t ldc, int64_t stride_c, int64_t count) {
  if (count <= 0 || m == 0 || n == 0) return;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // The same swap as gemm's, each operand keeping its own stride.
  LETHE_CUBLAS_CHECK(cublas_lib().sgemm_strided_batched(context().cublas(), op_b, op_a, n, m, k, &alpha, b, ldb,
                                                        stride_b, a, lda, stride_a, &beta, c, ldc, stride_c, count));
}

}  // namespace lethe::cuda
