// The backend harness (tests/kernels/backend_ops/ops.h): one test per row of the table, i.e. per
// entry of kernels/backend.inc.
//   BackendOpsTable.*                        backend.inc and the table name the same entries;
//                                            the rows have full-width ResNet-18 cases
//   BackendOpsReference.CpuMatchesDouble/E   the CPU's outputs against the row's double reference
//                                            (but the cases sized for a device's at-scale paths)
//   BackendOpsCuda.MatchesCpu/E              the CUDA backend's against the CPU's (skips without a GPU)
// Run them all with  build/lethe_tests --gtest_filter='BackendOps*'
// A failure names the case and the output, and prints the first mismatches (index, got, want).
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "kernels/device.h"
#include "kernels/backend_ops/ops.h"

namespace lethe::backend_ops {
namespace {

std::string read_backend_inc() {
  const std::string path = std::string(LETHE_SOURCE_DIR) + "/kernels/backend.inc";
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(BackendOpsTable, EveryEntryHasOneRow) {
  const auto declared = entries_declared(read_backend_inc());
  ASSERT_GE(declared.size(), 40u) << "the parse of kernels/backend.inc found too few entries";
  std::map<std::string, int> rows;
  for (const Row& r : table()) ++rows[r.entry];
  for (const std::string& entry : declared)
    EXPECT_EQ(rows.count(entry), 1u) << "kernels/backend.inc declares " << entry
                                     << " but the table (tests/kernels/backend_ops/) has no row for it";
  const std::set<std::string> known(declared.begin(), declared.end());
  for (const auto& [entry, count] : rows) {
    EXPECT_EQ(count, 1) << entry << " has " << count << " rows";
    EXPECT_EQ(known.count(entry), 1u) << "the table's row " << entry << " is no entry of kernels/backend.inc";
  }
  for (const Row& r : table()) EXPECT_FALSE(r.cases.empty()) << r.entry << " has no cases";
}

// The parse itself: comments are skipped, declarations spread over lines are found.
TEST(BackendOpsTable, ParsesDeclarationsNotComments) {
  const auto names = entries_declared(
      "// void commented(int);\nvoid gemm(bool a,\n          int b);\nbool all_finite(int64_t n); // void nope(\n");
  EXPECT_EQ(names, (std::vector<std::string>{"gemm", "all_finite"}));
}

// The comparison: NaN matches NaN and an infinity itself, a NaN on one side only is a mismatch,
// the absolute part grows with error_scale, and a report names the index, got and want.
TEST(BackendOpsTable, MismatchesReportIndexGotAndWant) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(mismatches({1, nan, inf, 0}, {1, nan, inf, 1e-3}, {0, 0, 1e-4}, 10), "");
  const std::string report = mismatches({1, 2, 0, 4}, {1, 2.5, nan, 4}, {1e-3, 1e-6, 0}, 1);
  EXPECT_NE(report.find("2 of 4 differ"), std::string::npos) << report;
  EXPECT_NE(report.find("[1] got 2.5 want 2"), std::string::npos) << report;
  EXPECT_NE(report.find("[2] got nan want 0"), std::string::npos) << report;
  EXPECT_NE(mismatches({1}, {1, 2}, {}, 1).find("sizes differ"), std::string::npos);
}

// The ResNet-18 shapes are part of the table, not an afterthought: every row has a full-width
// case but these three (the patience rule reads one number; ResNet-18's CIFAR form has no max
// pooling, whose rows run the MNIST CNN's instead).
TEST(BackendOpsTable, EveryRowButThreeHasAFullWidthResnetCase) {
  const std::set<std::string> without = {"descent_track", "maxpool2d_forward", "maxpool2d_backward"};
  for (const Row& r : table()) {
    bool resnet = false;
    for (const Case& c : r.cases) resnet = resnet || c.resnet;
    EXPECT_EQ(resnet, without.count(r.entry) == 0) << r.entry;
  }
}

std::string row_name(const ::testing::TestParamInfo<size_t>& info) { return table()[info.param].entry; }

std::vector<size_t> row_indices() {
  std::vector<size_t> v(table().size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

// Each output of `got` against the same-named one of `want`.
void expect_outputs_match(const Outputs& want, const Outputs& got, const Tolerance& tol, const Case& c) {
  ASSERT_EQ(want.size(), got.size()) << "different outputs";
  for (size_t o = 0; o < want.size(); ++o) {
    ASSERT_EQ(want[o].name, got[o].name);
    const std::string report = mismatches(want[o].values, got[o].values, tol, c.error_scale);
    EXPECT_TRUE(report.empty()) << want[o].name << ": " << report;
  }
}

class BackendOpsReference : public ::testing::TestWithParam<size_t> {};

TEST_P(BackendOpsReference, CpuMatchesDouble) {
  const Row& row = table()[GetParam()];
  for (const Case& c : row.cases) {
    if (c.at_scale) continue;  // checked against the CPU on the other backends only
    SCOPED_TRACE(row.entry + " " + c.shape);
    ASSERT_TRUE(c.reference) << "a case without a reference";
    Instance cpu = c.make(Device::CPU);
    cpu.launch();
    expect_outputs_match(c.reference(), cpu.read(), row.vs_double, c);
  }
}
INSTANTIATE_TEST_SUITE_P(, BackendOpsReference, ::testing::ValuesIn(row_indices()), row_name);

class BackendOpsCuda : public ::testing::TestWithParam<size_t> {};

TEST_P(BackendOpsCuda, MatchesCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  const Row& row = table()[GetParam()];
  for (const Case& c : row.cases) {
    SCOPED_TRACE(row.entry + " " + c.shape);
    Instance cpu = c.make(Device::CPU);
    cpu.launch();
    Instance cuda = c.make(Device::CUDA);
    cuda.launch();
    expect_outputs_match(cpu.read(), cuda.read(), row.vs_cpu, c);
  }
}
INSTANTIATE_TEST_SUITE_P(, BackendOpsCuda, ::testing::ValuesIn(row_indices()), row_name);

}  // namespace
}  // namespace lethe::backend_ops
