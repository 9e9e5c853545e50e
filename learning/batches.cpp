#include "learning/batches.h"

#include <algorithm>

#include "datasets/transforms.h"
#include "parallel/comm.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe {

void for_each_image_batch(const data::ImageSet& set, int64_t batch, Device device,
                          const std::function<void(const std::vector<int64_t>& idx, Tensor& x, Labels& labels)>& f,
                          const BatchWalk& walk) {
  int64_t begin = walk.begin, end = walk.end < 0 ? set.n : walk.end;
  if (begin < 0 || end > set.n || begin > end) fail("batches of examples [{}, {}) outside [0, {})", begin, end, set.n);
  if (batch < 1) throw UsageError(fmt::format("batch size {}: must be >= 1", batch));
  if (walk.sharded) {
    const ExampleRange mine = my_shard(begin, end, batch);
    begin = mine.lo, end = mine.hi;
  }
  std::vector<int64_t> idx;
  for (int64_t start = begin; start < end; start += batch) {
    if (walk.interruptible_as) check_interrupt("at example {} of {} ({})", start - begin + 1, end - begin, walk.interruptible_as);
    idx.clear();
    for (int64_t i = start; i < std::min(end, start + batch); ++i) idx.push_back(i);
    Labels labels;
    Tensor x = batch_images(set, idx, device, &labels);
    f(idx, x, labels);
    if (walk.progress) walk.progress(start - begin + static_cast<int64_t>(idx.size()), end - begin);
  }
}

ExampleRange shard_of(int64_t begin, int64_t end, int64_t batch, int rank, int ranks) {
  const int64_t batches = (end - begin + batch - 1) / batch;
  const auto first_batch = [&](int r) { return batches * r / ranks; };
  return {std::min(end, begin + first_batch(rank) * batch), std::min(end, begin + first_batch(rank + 1) * batch)};
}

ExampleRange my_shard(int64_t begin, int64_t end, int64_t batch) {
  const auto& c = parallel::comm();
  return c.multi() ? shard_of(begin, end, batch, c.rank(), c.size()) : ExampleRange{begin, end};
}

namespace {

template <typename T>
void share_rows_of(std::vector<T>& rows, int64_t n, int64_t width, int64_t batch) {
  auto& c = parallel::comm();
  if (!c.multi()) return;
  LETHE_CHECK(static_cast<int64_t>(rows.size()) == n * width, "{} values for {} rows of {}", rows.size(), n, width);
  const ExampleRange mine = my_shard(0, n, batch);
  const auto all = c.allgather(std::span<const T>(rows.data() + mine.lo * width, static_cast<size_t>((mine.hi - mine.lo) * width)));
  LETHE_CHECK(all.size() == rows.size(), "ranks gathered {} values for {} rows of {}", all.size(), n, width);
  rows = all;
}

}  // namespace

void share_rows(std::vector<float>& rows, int64_t n, int64_t width, int64_t batch) { share_rows_of(rows, n, width, batch); }
void share_rows(std::vector<double>& rows, int64_t n, int64_t width, int64_t batch) { share_rows_of(rows, n, width, batch); }

void sum_over_ranks(std::vector<double>& sums) { parallel::comm().allreduce_sum(std::span<double>(sums)); }

const std::vector<int64_t>& ShuffledBatches::next() {
  per_pass();
  return pass_[next_++];
}

int64_t ShuffledBatches::per_pass() {
  if (next_ == pass_.size()) {
    pass_ = data::shuffled_batches(n_, batch_, rng_, drop_last_);
    next_ = 0;
  }
  return static_cast<int64_t>(pass_.size());
}

}  // namespace lethe
