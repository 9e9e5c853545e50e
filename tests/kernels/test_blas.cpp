// How lethe drives the linked OpenBLAS: the OpenMP build keeps the thread count lethe sets; the
// pthreads build is held to one thread (lethe's own loops do the threading; see blas.cpp).
// CI links the OpenMP build; the pthreads case is checked by running this binary with
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "kernels/cpu/blas.h"

extern "C" int openblas_get_parallel(void);
extern "C" int openblas_get_num_threads(void);

namespace lethe {
namespace {

// C = A B for a 3x2 by 2x2 product with known entries.
std::vector<float> small_product() {
  const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{1, 0, 1, 1};
  std::vector<float> c(6, -1.0f);
  cpu::gemm(false, false, 3, 2, 2, 1.0f, a.data(), 2, b.data(), 2, 0.0f, c.data(), 2);
  return c;
}

TEST(Blas, ThreadCountFollowsTheBuildOfOpenBlas) {
  const int before = cpu::num_threads();
  cpu::set_num_threads(2);
  EXPECT_EQ(small_product(), (std::vector<float>{3, 2, 7, 4, 11, 6}));
  const int kind = openblas_get_parallel();
  if (kind == 1) {
    EXPECT_EQ(openblas_get_num_threads(), 1) << "the pthreads build must be held to one thread";
  } else if (kind == 2) {
    EXPECT_EQ(openblas_get_num_threads(), 2) << "the OpenMP build takes lethe's thread count";
  } else {
    SUCCEED() << "a single-threaded OpenBLAS build: nothing to configure";
  }
  EXPECT_EQ(cpu::num_threads(), 2);
  cpu::set_num_threads(before);
}

// Concurrent GEMMs from lethe's own parallel loops give the same results as serial ones.
TEST(Blas, ConcurrentCallsFromAParallelLoopAgree) {
  std::vector<std::vector<float>> results(8);
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 8; ++i) results[static_cast<size_t>(i)] = small_product();
  for (const auto& r : results) EXPECT_EQ(r, (std::vector<float>{3, 2, 7, 4, 11, 6}));
}

}  // namespace
}  // namespace lethe
