#pragma once
// Row-major single-precision GEMM on OpenBLAS: C = alpha * op(A) op(B) + beta * C,
// op(A) is M x K, op(B) is K x N. Inside an OpenMP parallel region OpenBLAS (its OpenMP build)
// runs on the calling thread, so per-sample loops may call it from every thread.
#include <cstdint>

namespace lethe::cpu {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Threads for OpenMP and OpenBLAS together (<= 0: leave the default).
void set_num_threads(int threads);
int num_threads();

}  // namespace lethe::cpu
