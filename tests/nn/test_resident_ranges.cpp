// Which kept host array a per-example request's pointer falls in (nn/per_example_kernels.h
// ResidentRanges): the host half of keeping a pass's sums on the GPU, the same in every build.
#include <gtest/gtest.h>

#include <vector>

#include "nn/per_example_kernels.h"
#include "util/error.h"

namespace lethe {
namespace {

TEST(ResidentRanges, FindsTheArrayAndTheOffsetOfASpanInside) {
  std::vector<double> fisher(100), dots(60), other(10);
  ResidentRanges r;
  EXPECT_EQ(r.add(fisher.data(), 100), 0u);
  EXPECT_EQ(r.add(dots.data(), 60), 1u);
  const auto whole = r.find(fisher.data(), 100);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->range, 0u);
  EXPECT_EQ(whole->offset, 0);
  const auto rows = r.find(dots.data() + 42, 18);  // the last batch's rows, ending at the end
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->range, 1u);
  EXPECT_EQ(rows->offset, 42);
  EXPECT_FALSE(r.find(other.data(), 10));  // not kept: the request stages it as before
  EXPECT_FALSE(r.find(nullptr, 0));
}

TEST(ResidentRanges, RefusesSpansThatRunPastAnArrayAndArraysThatOverlap) {
  std::vector<double> a(50);
  ResidentRanges r;
  r.add(a.data(), 40);
  EXPECT_THROW(r.find(a.data() + 30, 11), Error);  // would add past the kept array's end
  EXPECT_TRUE(r.find(a.data() + 30, 10));
  EXPECT_THROW(r.add(a.data() + 39, 5), Error);    // overlaps the first
  EXPECT_EQ(r.add(a.data() + 40, 10), 1u);         // adjoins it: fine
  EXPECT_THROW(r.add(a.data(), 0), Error);
  r.clear();
  EXPECT_EQ(r.size(), 0u);
  EXPECT_FALSE(r.find(a.data(), 1));
}

// On the CPU nothing is made resident: the engine's requests write the host arrays directly.
TEST(ResidentSums, KeepsNothingForTheCpu) {
  std::vector<double> a(8);
  ResidentSums sums;
  sums.keep(Device::CPU, a.data(), 8);
  EXPECT_TRUE(sums.empty());
  sums.flush();
}

}  // namespace
}  // namespace lethe
