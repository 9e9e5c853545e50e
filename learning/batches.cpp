#include "learning/batches.h"

#include "datasets/transforms.h"

namespace lethe {

void for_each_image_batch(const data::ImageSet& set, int64_t batch, Device device,
                          const std::function<void(const std::vector<int64_t>& idx, Tensor& x, Labels& labels)>& f) {
  for (const auto& idx : data::sequential_batches(set.n, batch)) {
    Labels labels;
    Tensor x = batch_images(set, idx, device, &labels);
    f(idx, x, labels);
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
