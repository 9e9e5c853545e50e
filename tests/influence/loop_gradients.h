#pragma once
// The reference the per-example engine is tested against: each example's gradient by a backward
// pass of its own loss alone, in evaluation mode (as the engine runs the model), in double.
#include <vector>

#include "datasets/mnist.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "influence/params.h"

namespace lethe::repair {

inline std::vector<std::vector<double>> loop_gradients(Module& model, const data::ImageSet& set) {
  ModeGuard evaluation_mode(model, false);
  std::vector<std::vector<double>> g;
  for (int64_t i = 0; i < set.n; ++i) {
    std::vector<int64_t> idx{i};
    Labels labels;
    Tensor x = batch_images(set, idx, Device::CPU, &labels);
    model.zero_grad();
    sum(cross_entropy(model.forward(x), labels)).backward();
    const auto gi = flatten_grads(model);
    g.emplace_back(gi.begin(), gi.end());
  }
  model.zero_grad();
  return g;
}

}  // namespace lethe::repair
