// LETHE_CUDA_SYNC (kernels/cuda_sync.h): the switch's parsing and the message a fault found by
// the wait after a launch carries, on any machine; on a GPU, a kernel that faults while running
// is reported by its own launch, naming it, in a process of its own (a fault poisons the CUDA
// context of the process it happens in).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "datasets/idx_fixture.h"
#include "kernels/backend.h"
#include "kernels/cuda_sync.h"
#include "kernels/device.h"
#include "kernels/rerun_self.h"

namespace lethe {
namespace {

using data::fixture::expect_error_mentioning;

TEST(CudaSync, TheSwitchIsOffUnlessSetToOne) {
  EXPECT_FALSE(parse_cuda_sync(nullptr));
  EXPECT_FALSE(parse_cuda_sync(""));
  EXPECT_FALSE(parse_cuda_sync("0"));
  EXPECT_TRUE(parse_cuda_sync("1"));
}

TEST(CudaSync, AnyOtherValueIsRefusedNamingTheVariable) {
  for (const char* v : {"yes", "2", " 1", "true"}) {
    SCOPED_TRACE(v);
    expect_error_mentioning([&] { parse_cuda_sync(v); },
                            {std::string("LETHE_CUDA_SYNC=") + v, "expected 1"});
  }
}

TEST(CudaSync, TheFaultMessageNamesTheKernelAndWhereItWasLaunched) {
  EXPECT_EQ(kernel_fault_message("fill", "cudaErrorIllegalAddress", "an illegal memory access was encountered",
                                 "kernels/cuda/launch.cuh", 42),
            "CUDA kernel fill failed while running: cudaErrorIllegalAddress (an illegal memory access was "
            "encountered) (kernels/cuda/launch.cuh:42; LETHE_CUDA_SYNC=1)");
}

#ifdef LETHE_WITH_CUDA
// Run only as the child of the test below: a fill through an address no allocation holds.
TEST(CudaSyncChild, AFaultIsReportedByItsLaunch) {
  if (!std::getenv("LETHE_CUDA_SYNC_CHILD")) GTEST_SKIP() << "run by CudaSync.AFaultNamesItsKernel";
  auto* nowhere = reinterpret_cast<float*>(uintptr_t{1} << 40);
  expect_error_mentioning([&] { cuda::fill(int64_t{1} << 20, 1.0f, nowhere); },
                          {"CUDA kernel fill failed while running", "LETHE_CUDA_SYNC=1"});
}
#endif

TEST(CudaSync, AFaultNamesItsKernel) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  std::string out;
  const int status = test::rerun_self("LETHE_CUDA_SYNC=1 LETHE_CUDA_SYNC_CHILD=1", "CudaSyncChild.*", out);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ] 1 test"), std::string::npos) << out;
}

}  // namespace
}  // namespace lethe
