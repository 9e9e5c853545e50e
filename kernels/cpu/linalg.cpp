#include "kernels/cpu/linalg.h"

#include <cblas.h>

#include <utility>
#include <vector>

#include "kernels/cpu/blas.h"
#include "util/error.h"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);

namespace lethe::cpu {

void symmetric_eigen(int64_t n64, double* a, double* w) {
  LETHE_CHECK(n64 > 0 && n64 < 46341, "symmetric_eigen: size {}", n64);  // n² fits LAPACK's int
  const int n = static_cast<int>(n64);
  ensure_blas_configured();  // LAPACK runs on the kernels lethe chose
  // Row-major symmetric == column-major symmetric; LAPACK returns eigenvectors in columns
  // (column-major), i.e. rows of the row-major view: transposed after.
  int lwork = -1, liwork = -1, info = 0;
  double work_query = 0;
  int iwork_query = 0;
  dsyevd_("V", "U", &n, a, &n, w, &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevd_("V", "U", &n, a, &n, w, work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) fail("symmetric eigendecomposition of a {}x{} matrix failed (LAPACK info {})", n, n, info);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) std::swap(a[static_cast<size_t>(i) * n + j], a[static_cast<size_t>(j) * n + i]);
}

void dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
           const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  ensure_blas_configured();
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace lethe::cpu
