#pragma once
// A tiny convolutional network with every layer type the per-example engine knows (a strided,
// padded convolution, BatchNorm, a bias-free Linear and a Linear) and random images for it:
// small enough for dense references in double.
#include <memory>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "util/rng.h"

namespace lethe::repair {

inline data::ImageSet random_images(int64_t n, int64_t c, int64_t h, int64_t w, int classes, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = c, s.height = h, s.width = w, s.num_classes = classes;
  Rng rng(seed);
  for (int64_t i = 0; i < n * c * h * w; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-0.5, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(classes))));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

inline std::unique_ptr<Sequential> tiny_conv_net(uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(2, 3, 3, 2, 1, rng))
      .add(std::make_unique<BatchNorm2d>(3))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Conv2d>(3, 4, 3, 1, 0, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Flatten>())
      .add(std::make_unique<Linear>(4 * 3 * 2, 7, rng, /*bias=*/false))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Linear>(7, 10, rng));
  return net;
}

}  // namespace lethe::repair
