// parallel::Comm: the one-process default (every collective returns its input, a failure is
// this process's own), the sharding of a pass over ranks, and, under mpirun, every collective
// and the failure agreement across real ranks (collectives_check.cc).
#include <gtest/gtest.h>

#include <numeric>

#include "learning/batches.h"
#include "parallel/comm.h"
#include "parallel/mpi_harness.h"
#include "parallel/rounds.h"

#ifndef LETHE_COLLECTIVES_CHECK
#error "LETHE_COLLECTIVES_CHECK (the path of the collectives check program) must be defined by the build"
#endif

namespace lethe {
namespace {

using mpi_test::lines_starting;
using mpi_test::run_mpirun;

TEST(Collectives, OneProcessIsRankZeroOfOneAndCollectivesKeepTheirInput) {
  parallel::Comm c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_FALSE(c.multi());
  std::vector<double> d = {1.5, -2.0};
  c.allreduce_sum(std::span<double>(d));
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0}));
  const std::vector<float> block = {3.0f, 4.0f};
  EXPECT_EQ(c.allgather(std::span<const float>(block)), block);
  const auto report = c.fail("bad file", 7);
  EXPECT_EQ(report.rank, 0);
  EXPECT_EQ(report.exit_code, 7);
  EXPECT_EQ(report.message, "bad file");
  EXPECT_NO_THROW(c.finish());
}

// In one process the rounds are one job each, in the order `next` gives them.
TEST(Collectives, OneProcessRunsItsJobsOneARound) {
  std::vector<std::vector<int64_t>> rounds;
  parallel::run_in_rounds(
      parallel::dealt_round_robin(3), [](int64_t key) { return std::vector<double>{static_cast<double>(key) + 0.5}; },
      [&](const std::vector<parallel::JobResult>& round) {
        rounds.emplace_back();
        for (const auto& r : round) {
          EXPECT_EQ(r.rank, 0);
          EXPECT_EQ(r.values, std::vector<double>{static_cast<double>(r.key) + 0.5});
          rounds.back().push_back(r.key);
        }
      });
  EXPECT_EQ(rounds, (std::vector<std::vector<int64_t>>{{0}, {1}, {2}}));
}

// Without a launcher's variables the process is one rank whatever the build.
TEST(Collectives, ProcessNotStartedByALauncherIsOneRank) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) GTEST_SKIP() << "this test runs under a launcher";
  EXPECT_EQ(parallel::launched_size(), 1);
  EXPECT_FALSE(parallel::comm().multi());
}

// Shards are whole batches, contiguous, in rank order, and together the whole range: a rank's
// batches are the ones a single process forms there (so its per-example values are the same).
TEST(Collectives, ShardsAreWholeBatchesCoveringTheRange) {
  for (const auto& [begin, end, batch] : {std::tuple<int64_t, int64_t, int64_t>{0, 1000, 256}, {0, 10, 256}, {5, 5, 3},
                                         {3, 1003, 100}, {0, 7, 1}}) {
    for (int ranks : {1, 2, 3, 8}) {
      int64_t at = begin;
      for (int r = 0; r < ranks; ++r) {
        const ExampleRange s = shard_of(begin, end, batch, r, ranks);
        EXPECT_EQ(s.lo, at) << "rank " << r << " of " << ranks;
        EXPECT_LE(s.lo, s.hi);
        if (s.hi < end) {
          EXPECT_EQ((s.hi - begin) % batch, 0) << "a shard ends inside a batch";
        }
        at = s.hi;
      }
      EXPECT_EQ(at, end) << ranks << " ranks over [" << begin << ", " << end << ")";
    }
  }
  // Two ranks split 1000 examples in batches of 256 (4 batches) as 2 + 2 batches.
  EXPECT_EQ(shard_of(0, 1000, 256, 0, 2).hi, 512);
  EXPECT_EQ(shard_of(0, 1000, 256, 1, 2).lo, 512);
}

TEST(Collectives, EveryCollectiveAcrossTwoAndThreeRanks) {
  LETHE_REQUIRE_MPI();
  for (int ranks : {2, 3}) {
    const auto r = run_mpirun(ranks, {"sums"}, LETHE_COLLECTIVES_CHECK);
    ASSERT_EQ(r.exit_code, 0) << cli_test::describe(r);
    const auto ok = lines_starting(r.out, "rank ");
    EXPECT_EQ(ok.size(), static_cast<size_t>(ranks)) << cli_test::describe(r);
    for (const auto& line : ok) EXPECT_NE(line.find(" of " + std::to_string(ranks) + ": ok (mpi"), std::string::npos) << line;
  }
}

// Ranks 1 and 2 fail while rank 0 waits in an all-reduce: rank 0 learns rank 1's message and
// code (the lowest failing rank's), the failing ranks learn the same, and nobody hangs.
TEST(Collectives, FailingRanksReachTheOthersWithTheLowestRanksMessage) {
  LETHE_REQUIRE_MPI();
  const auto r = run_mpirun(3, {"fail"}, LETHE_COLLECTIVES_CHECK);
  ASSERT_EQ(r.exit_code, 0) << cli_test::describe(r);
  EXPECT_EQ(lines_starting(r.out, "rank ").size(), 3u) << cli_test::describe(r);
  EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << cli_test::describe(r);
}

}  // namespace
}  // namespace lethe
