#pragma once
// Multinomial logistic regression on Gaussian clusters: a convex problem where retraining to the
// exact optimum is cheap, so the repair methods' answers can be checked against the truth.
#include <memory>

#include "datasets/mnist.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/models.h"
#include "nn/optim.h"

namespace lethe::repair {

inline constexpr int kFeatures = 3, kClasses = 3;
inline constexpr float kWeightDecay = 0.1f;

// Three Gaussian clusters in 3-d, as 1x1x3 "images".
inline data::ImageSet clusters(int64_t n, uint64_t seed, double spread) {
  data::ImageSet s;
  s.n = n, s.channels = 1, s.height = 1, s.width = kFeatures, s.num_classes = kClasses;
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int y = static_cast<int>(i % kClasses);
    for (int f = 0; f < kFeatures; ++f) s.pixels.push_back(static_cast<float>((f == y ? 1.0 : 0.0) + spread * rng.normal()));
    s.labels.push_back(y);
    s.source_index.push_back(i);
  }
  return s;
}

inline std::unique_ptr<Sequential> logistic(uint64_t seed) {
  Rng rng(seed);
  auto m = std::make_unique<Sequential>();
  m->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(kFeatures, kClasses, rng));
  return m;
}

// Minimises Σ ℓ + (wd/2)||θ||² by full-batch Adam from the model's current parameters.
inline void fit(Module& model, const data::ImageSet& set, int steps, float lr) {
  AdamHyper h;
  h.lr = lr;
  h.weight_decay = kWeightDecay;
  Adam adam(model.parameters(), h);
  std::vector<int64_t> all(static_cast<size_t>(set.n));
  for (int64_t i = 0; i < set.n; ++i) all[i] = i;
  Labels labels;
  Tensor x = batch_images(set, all, Device::CPU, &labels);
  for (int s = 0; s < steps; ++s) {
    adam.zero_grad();
    sum(cross_entropy(model.forward(x), labels)).backward();
    adam.step();
  }
}

inline double set_loss(Module& model, const data::ImageSet& set) {
  NoGradGuard ng;
  std::vector<int64_t> all(static_cast<size_t>(set.n));
  for (int64_t i = 0; i < set.n; ++i) all[i] = i;
  Labels labels;
  return sum(cross_entropy(model.forward(batch_images(set, all, Device::CPU, &labels)), labels)).item();
}

}  // namespace lethe::repair
