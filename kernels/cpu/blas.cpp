#include "kernels/cpu/blas.h"

#include <cblas.h>
#include <omp.h>

#include "util/error.h"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_parallel(void);  // 0: single-threaded build, 1: pthreads, 2: OpenMP

namespace lethe::cpu {
namespace {

// The CPU kernels call GEMM from inside their own OpenMP loops (one example per thread). The
// OpenMP build of OpenBLAS then runs each call on its calling thread and uses every thread only
// for calls made outside a parallel region. The pthreads build (the one Ubuntu and Debian pick by
// default when both are installed) instead sends every call to its own pool, which concurrent
// calls must take turns on: a training epoch (MNIST CNN, 3000 examples) took 20 s with it
// against 8 s on two cores. With that build, OpenBLAS is kept to one thread and lethe's loops do
// the threading (the same epoch: 6 s).
bool blas_has_own_pool() {
  static const bool own = openblas_get_parallel() == 1;
  return own;
}

int blas_threads(int threads) { return blas_has_own_pool() ? 1 : threads; }

// Applied once before the first GEMM, for programs that never call set_num_threads.
void configure_blas_once() {
  static const bool done = [] {
    if (blas_has_own_pool()) openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  configure_blas_once();
  LETHE_CHECK(m < INT32_MAX && n < INT32_MAX && k < INT32_MAX && lda < INT32_MAX && ldb < INT32_MAX &&
                  ldc < INT32_MAX,
              "gemm sizes {}x{}x{} exceed the 32-bit BLAS interface", m, n, k);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void set_num_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(blas_threads(threads));
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace lethe::cpu
