// Run under a launcher (mpirun -np N) by tests/parallel/test_collectives.cpp: every collective
// of parallel::Comm with rank-dependent inputs whose results are known exactly, working alone
// and rounds of jobs (parallel/rounds.h), then the failure agreement. Prints one line per rank on success ("rank R of N: ok"), else what differed;
// exits 0 only when every check held on this rank.
//   collectives_check sums         every collective, WorkAlone, run_in_rounds
//   collectives_check fail         rank 1 (and 2, when there) fail while rank 0 is in an all-reduce
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/rounds.h"

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("rank %d: FAILED %s\n", lethe::parallel::comm().rank(), what.c_str());
    ++failures;
  }
}

void sums() {
  auto& c = lethe::parallel::comm();
  const int r = c.rank(), n = c.size();
  // Integers held in double and float are summed exactly, whatever the order of the additions.
  std::vector<double> d(1000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<double>(i) * (r + 1);
  c.allreduce_sum(std::span<double>(d));
  bool ok = true;
  for (size_t i = 0; i < d.size(); ++i) ok = ok && d[i] == static_cast<double>(i) * n * (n + 1) / 2;
  expect(ok, "allreduce_sum(double)");
  std::vector<float> f(257, static_cast<float>(r + 1));
  c.allreduce_sum(std::span<float>(f));
  ok = true;
  for (float x : f) ok = ok && x == static_cast<float>(n * (n + 1) / 2);
  expect(ok, "allreduce_sum(float)");
  std::vector<int64_t> k = {int64_t{1} << 40, r};
  c.allreduce_sum(std::span<int64_t>(k));
  expect(k[0] == (int64_t{1} << 40) * n && k[1] == static_cast<int64_t>(n) * (n - 1) / 2, "allreduce_sum(int64)");
  // Blocks of different lengths (rank r gives r + 1 values; rank 0's first is r*100 + i).
  std::vector<double> block(static_cast<size_t>(r + 1));
  for (int i = 0; i <= r; ++i) block[static_cast<size_t>(i)] = r * 100 + i;
  const auto all = c.allgather(std::span<const double>(block));
  std::vector<double> want;
  for (int q = 0; q < n; ++q)
    for (int i = 0; i <= q; ++i) want.push_back(q * 100 + i);
  expect(all == want, "allgather of variable-length blocks");
  // An empty block from every rank but the last.
  std::vector<float> tail(r == n - 1 ? 3 : 0, 7.0f);
  expect(c.allgather(std::span<const float>(tail)) == std::vector<float>(3, 7.0f), "allgather with empty blocks");
  std::string s = r == n - 1 ? "from the last rank" : "";
  c.broadcast(s, n - 1);
  expect(s == "from the last rank", "broadcast(string) from rank " + std::to_string(n - 1));
  int64_t v = r == 0 ? 42 : -1;
  c.broadcast(&v, sizeof v, 0);
  expect(v == 42, "broadcast(bytes)");
  c.barrier();
}

// Work alone, then rounds of it: rank r of n has r + 1 jobs (keys 10r, 10r + 1, ...), so round t
// holds the jobs of ranks t..n-1, and every rank sees each round's results in rank order.
void rounds() {
  auto& c = lethe::parallel::comm();
  const int r = c.rank(), n = c.size();
  {
    lethe::parallel::WorkAlone alone;
    const std::vector<double> block = {static_cast<double>(r)};
    expect(c.rank() == 0 && c.size() == 1 && !c.multi(), "WorkAlone: rank 0 of 1");
    expect(c.allgather(std::span<const double>(block)) == block, "WorkAlone: an all-gather returns its input");
  }
  expect(c.rank() == r && c.size() == n && c.multi(), "after WorkAlone: the run's rank and size");
  int64_t given = 0;
  int round_number = 0;
  lethe::parallel::run_in_rounds(
      [&]() -> std::optional<int64_t> {
        if (given > r) return std::nullopt;
        return 10 * r + given++;
      },
      [&](int64_t key) {
        return std::vector<double>{static_cast<double>(key) / 2, static_cast<double>(c.size())};
      },
      [&](const std::vector<lethe::parallel::JobResult>& round) {
        const int t = round_number++;
        bool ok = round.size() == static_cast<size_t>(n - t);
        for (size_t i = 0; ok && i < round.size(); ++i) {
          const int from = t + static_cast<int>(i);
          ok = round[i].rank == from && round[i].key == 10 * from + t &&
               round[i].values == std::vector<double>{(10.0 * from + t) / 2, 1.0};
        }
        expect(ok, "round " + std::to_string(t) + " of run_in_rounds");
      });
  expect(round_number == n, "run_in_rounds: " + std::to_string(round_number) + " rounds for " + std::to_string(n));
  // Dealt round-robin: rank r takes r, r + n, ... below 7.
  const auto next = lethe::parallel::dealt_round_robin(7);
  bool dealt = true;
  for (int64_t k = r; k < 7; k += n) dealt = dealt && next() == std::optional<int64_t>(k);
  expect(dealt && !next(), "dealt_round_robin(7)");
  c.finish();
}

void failing() {
  auto& c = lethe::parallel::comm();
  if (c.rank() >= 1) {
    // Two failing ranks (when there are three): the lower one's message and code win.
    const auto report = c.fail("cannot read 'missing.bin' on rank " + std::to_string(c.rank()), 10 + c.rank());
    expect(report.rank == 1 && report.exit_code == 11 && report.message == "cannot read 'missing.bin' on rank 1",
           "failure report on a failing rank");
  } else {
    try {
      std::vector<double> d(10, 1.0);
      c.allreduce_sum(std::span<double>(d));
      expect(false, "allreduce_sum returned although rank 1 failed");
    } catch (const lethe::parallel::RemoteFailure& e) {
      expect(e.rank() == 1 && e.exit_code() == 11 && std::string(e.what()) == "cannot read 'missing.bin' on rank 1",
             std::string("RemoteFailure: ") + e.what());
    }
  }
  // Once a failure is known, every collective throws at once without communicating.
  bool threw = false;
  try {
    c.barrier();
  } catch (const lethe::parallel::RemoteFailure&) {
    threw = true;
  }
  expect(threw, "a collective after the failure");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    lethe::parallel::start(argc, argv);
  } catch (const std::exception& e) {
    std::printf("start failed: %s\n", e.what());
    return 2;
  }
  auto& c = lethe::parallel::comm();
  const std::string mode = argc > 1 ? argv[1] : "sums";
  if (c.size() < 2) {
    std::printf("rank 0 of 1: one process (launched size %d, backend %s)\n", lethe::parallel::launched_size(), c.backend());
    return 3;
  }
  if (mode == "sums") sums(), rounds();
  else if (mode == "fail") failing();
  else return 2;
  if (failures == 0) std::printf("rank %d of %d: ok (%s, local rank %d)\n", c.rank(), c.size(), c.backend(), c.local_rank());
  std::fflush(stdout);
  c.close();
  return failures == 0 ? 0 : 1;
}
