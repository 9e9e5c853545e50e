#pragma once
// A width-reduced ResNet-18 with BatchNorm statistics worth testing against, and random RGB
// images for it: shared by the per-example tests that run it on one backend against a loop and
// on two backends against each other.
#include <memory>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/models.h"
#include "util/rng.h"

namespace lethe::repair {

// n random 3 x side x side images with labels in [0, 10).
inline data::ImageSet resnet_images(int64_t n, int64_t side, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = 3, s.height = side, s.width = side, s.num_classes = 10;
  Rng rng(seed);
  for (int64_t i = 0; i < n * 3 * side * side; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

// A resnet18-w2 whose BatchNorms have non-trivial running statistics and affine parameters, so a
// quantity computed with batch statistics (or without γ) would disagree with the loop. The same
// seed gives the same model.
inline std::unique_ptr<Module> small_resnet(uint64_t seed) {
  Rng rng(seed);
  auto net = make_model("resnet18-w2", rng);
  for (auto& b : net->named_buffers()) {
    if (b.integer) continue;
    const bool var = b.name.find("running_var") != std::string::npos;
    std::vector<float> v(static_cast<size_t>(b.tensor.numel()));
    for (auto& x : v) x = static_cast<float>(var ? rng.uniform(0.5, 2.0) : rng.uniform(-0.3, 0.3));
    b.tensor.copy_(Tensor::from_vector(b.tensor.shape(), v));
  }
  for (auto& p : net->named_parameters()) {
    if (p.tensor.dim() != 1 || p.name.rfind("fc.", 0) == 0) continue;  // BatchNorm γ and β
    std::vector<float> v(static_cast<size_t>(p.tensor.numel()));
    const bool weight = p.name.find("weight") != std::string::npos;
    for (auto& x : v) x = static_cast<float>(weight ? rng.uniform(0.5, 1.5) : rng.uniform(-0.2, 0.2));
    p.tensor.copy_(Tensor::from_vector(p.tensor.shape(), v));
  }
  return net;
}

}  // namespace lethe::repair
