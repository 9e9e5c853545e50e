// repair's passes over D sharded across two ranks against one process (passes_check.cc): the
// per-example values bit for bit (a rank's batches are the ones a single process forms there),
// the sums to the rounding of their association.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "parallel/mpi_harness.h"

#ifndef LETHE_PASSES_CHECK
#error "LETHE_PASSES_CHECK (the path of the passes check program) must be defined by the build"
#endif

namespace lethe {
namespace {

std::vector<std::vector<double>> blocks_of(const std::string& path) {
  const std::string bytes = cli_test::read_all(path);
  std::vector<double> all(bytes.size() / sizeof(double));
  std::memcpy(all.data(), bytes.data(), all.size() * sizeof(double));
  std::vector<std::vector<double>> out;
  for (size_t at = 0; at < all.size();) {
    const size_t n = static_cast<size_t>(all[at]);
    out.emplace_back(all.begin() + at + 1, all.begin() + at + 1 + n);
    at += 1 + n;
  }
  return out;
}

TEST(ShardedPasses, TwoRanksGiveTheOneProcessFisherKfacProductsAndPerExampleValues) {
  LETHE_REQUIRE_MPI();
  cli_test::TempDir work;
  cli_test::LaunchOptions check;
  check.program = LETHE_PASSES_CHECK;
  auto alone = cli_test::start_lethe({work.file("one.bin")}, check);
  const auto r1 = cli_test::finish_lethe(alone);
  ASSERT_EQ(r1.exit_code, 0) << cli_test::describe(r1);
  const auto r2 = mpi_test::run_mpirun(2, {work.file("two.bin")}, LETHE_PASSES_CHECK);
  ASSERT_EQ(r2.exit_code, 0) << cli_test::describe(r2);
  const auto one = blocks_of(work.file("one.bin")), two = blocks_of(work.file("two.bin"));
  ASSERT_EQ(one.size(), two.size());
  ASSERT_GE(one.size(), 8u + 3u);
  const char* names[] = {"losses", "dots", "squared norms", "empirical Fisher", "sampled Fisher", "summed gradient",
                         "Fisher-vector product", "GGN-vector product"};
  for (size_t b = 0; b < one.size(); ++b) {
    const std::string name = b < 8 ? names[b] : "KFAC factor " + std::to_string(b - 8);
    ASSERT_EQ(one[b].size(), two[b].size()) << name;
    ASSERT_FALSE(one[b].empty() && b < 8) << name;
    double scale = 0, worst = 0;
    for (size_t i = 0; i < one[b].size(); ++i) {
      scale = std::max(scale, std::abs(one[b][i]));
      worst = std::max(worst, std::abs(one[b][i] - two[b][i]));
    }
    if (b < 3) {
      EXPECT_EQ(worst, 0.0) << name << ": per-example values differ";  // same batches, same code
    } else if (b == 5) {
      // Accumulated in float in the parameters' .grad over each rank's batches, then added in
      // double: float rounding of a different association, ~1e-7 of the largest entry.
      EXPECT_LE(worst, 1e-6 * scale) << name;
    } else {
      // Sums in double (the per-example engine's accumulators, the products' and factors' sums
      // over batches): one extra addition per rank, ~1e-16 of the largest entry (measured: the
      // Fisher 1e-17, the products and factors exactly equal).
      EXPECT_LE(worst, 1e-14 * scale) << name;
    }
  }
}

}  // namespace
}  // namespace lethe
