#include "parallel/rounds.h"

#include <memory>

#include "parallel/comm.h"
#include "util/error.h"

namespace lethe::parallel {

void run_in_rounds(const std::function<std::optional<int64_t>()>& next,
                   const std::function<std::vector<double>(int64_t key)>& work,
                   const std::function<void(const std::vector<JobResult>& round)>& done) {
  for (;;) {
    // This rank's block: [0] without a job, else [1, key, count, values...]. Every rank sends
    // one, so the r-th block of the gather is rank r's.
    std::vector<double> block = {0.0};
    if (const std::optional<int64_t> key = next()) {
      std::vector<double> values;
      {
        WorkAlone alone;
        values = work(*key);
      }
      block = {1.0, static_cast<double>(*key), static_cast<double>(values.size())};
      block.insert(block.end(), values.begin(), values.end());
    }
    const std::vector<double> all = comm().allgather(std::span<const double>(block));
    std::vector<JobResult> round;
    size_t at = 0;
    for (int r = 0; r < comm().size(); ++r) {
      LETHE_CHECK(at < all.size(), "a round of {} values holds no block of rank {}", all.size(), r);
      if (all[at++] == 0) continue;
      LETHE_CHECK(at + 2 <= all.size() && at + 2 + static_cast<size_t>(all[at + 1]) <= all.size(),
                  "a round of {} values cuts rank {}'s block short", all.size(), r);
      JobResult j;
      j.key = static_cast<int64_t>(all[at]);
      j.rank = r;
      const auto first = all.begin() + static_cast<std::ptrdiff_t>(at + 2);
      j.values.assign(first, first + static_cast<std::ptrdiff_t>(all[at + 1]));
      at += 2 + j.values.size();
      round.push_back(std::move(j));
    }
    if (round.empty()) return;
    done(round);
  }
}

std::function<std::optional<int64_t>()> dealt_round_robin(int64_t count) {
  const int64_t ranks = comm().size();
  auto key = std::make_shared<int64_t>(comm().rank());
  return [=]() -> std::optional<int64_t> {
    if (*key >= count) return std::nullopt;
    const int64_t k = *key;
    *key += ranks;
    return k;
  };
}

}  // namespace lethe::parallel
