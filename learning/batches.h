#pragma once
// The one way to walk an image set in batches: in order (evaluation and dataset-wide passes),
// or as an endless seeded shuffle reshuffled after every pass (training and the anchored
// descent). Each batch comes as its examples' indices in the set, their images as a
// [b, c, h, w] tensor on the device, and their labels.
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/mnist.h"
#include "learning/train.h"
#include "util/rng.h"

namespace lethe {

// What a dataset-wide pass may ask of the walk besides the batches themselves.
struct BatchWalk {
  int64_t begin = 0, end = -1;  // the examples [begin, end) of the set; end -1: to the set's end
  // Named in the message when an interruption (Ctrl-C, SIGTERM) stops the walk between batches;
  // empty: the walk is not interruptible.
  const char* interruptible_as = nullptr;
  std::function<void(int64_t done, int64_t total)> progress;  // after each batch, in examples
  // Across several ranks (parallel/comm.h), each walks only its shard of the batches
  // (shard_of); the pass then combines the ranks' results (sum_over_ranks, share_rows). One
  // process walks everything either way.
  bool sharded = false;
};

// The examples [lo, hi) of [begin, end) that `rank` of `ranks` walks in a sharded pass: whole
// batches of `batch`, contiguous, in rank order, so a rank's batches are exactly the batches a
// single process forms there and the ranks' shards concatenate to the whole.
struct ExampleRange {
  int64_t lo = 0, hi = 0;
};
ExampleRange shard_of(int64_t begin, int64_t end, int64_t batch, int rank, int ranks);
// This process's shard (the whole range when it runs alone).
ExampleRange my_shard(int64_t begin, int64_t end, int64_t batch);

// After a sharded pass over [0, n) where this rank filled rows [lo, hi) of `rows` (n rows of
// `width` values, row i for example i), every rank holds every row. No-op for one process.
void share_rows(std::vector<float>& rows, int64_t n, int64_t width, int64_t batch);
void share_rows(std::vector<double>& rows, int64_t n, int64_t width, int64_t batch);
// A pass's sums, added over ranks in double. No-op for one process.
void sum_over_ranks(std::vector<double>& sums);

// f(idx, x, labels) for consecutive batches of `batch` examples (the last may be shorter).
void for_each_image_batch(const data::ImageSet& set, int64_t batch, Device device,
                          const std::function<void(const std::vector<int64_t>& idx, Tensor& x, Labels& labels)>& f,
                          const BatchWalk& walk = {});

// Batches of a seeded permutation of [0, n); when a pass is used up the next is drawn from the
// same generator, so a pass's order depends only on the seed and how many passes came before.
class ShuffledBatches {
 public:
  ShuffledBatches(int64_t n, int64_t batch, Rng& rng, bool drop_last = false)
      : n_(n), batch_(batch), rng_(rng), drop_last_(drop_last) {}
  const std::vector<int64_t>& next();
  // The batches of the pass that next() is in (or starts), drawing it when none is left.
  int64_t per_pass();

 private:
  int64_t n_, batch_;
  Rng& rng_;
  bool drop_last_;
  std::vector<std::vector<int64_t>> pass_;
  size_t next_ = 0;
};

}  // namespace lethe
