#include "learning/batches.h"

#include <algorithm>

#include "datasets/transforms.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe {

void for_each_image_batch(const data::ImageSet& set, int64_t batch, Device device,
                          const std::function<void(const std::vector<int64_t>& idx, Tensor& x, Labels& labels)>& f,
                          const BatchWalk& walk) {
  const int64_t begin = walk.begin, end = walk.end < 0 ? set.n : walk.end;
  if (begin < 0 || end > set.n || begin > end) fail("batches of examples [{}, {}) outside [0, {})", begin, end, set.n);
  if (batch < 1) throw UsageError(fmt::format("batch size {}: must be >= 1", batch));
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
