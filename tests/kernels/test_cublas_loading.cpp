// cuBLAS is opened when first needed, not when the program starts (kernels/cuda/cublas_lib.h):
// a fresh process has no libcublas mapped, and asking for the library's version (what `lethe
// info` does; a GEMM on the GPU does the same) maps it and reads it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "kernels/device.h"
#include "kernels/rerun_self.h"

namespace lethe {
namespace {

bool cublas_mapped() {
  std::ifstream maps("/proc/self/maps");
  const std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  return all.find("libcublas") != std::string::npos;
}

// Run only as the child of the test below, in a process that has done nothing else.
TEST(CublasLoadingChild, NotMappedUntilAskedFor) {
  if (!std::getenv("LETHE_CUBLAS_LOADING_CHILD")) GTEST_SKIP() << "run by CublasLoading.OnFirstUse";
  EXPECT_FALSE(cublas_mapped()) << "libcublas is mapped before anything asked for it";
  const device::CudaInfo info = device::cuda_info();
  ASSERT_GE(info.cublas_version, 10000) << "the toolkit's cuBLAS was not found or not read";
  EXPECT_TRUE(cublas_mapped());
}

TEST(CublasLoading, OnFirstUse) {
  if (!device::cuda_info().built) GTEST_SKIP() << "this lethe was built without the CUDA backend";
  std::string out;
  const int status = test::rerun_self("LETHE_CUBLAS_LOADING_CHILD=1", "CublasLoadingChild.*", out);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

}  // namespace
}  // namespace lethe
