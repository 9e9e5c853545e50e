// Per-example gradients through the layers ResNet-9 adds (global max pooling, a constant scale,
// a residual without the ReLU after its sum) against the loop of single-example backward passes,
// as tests/influence/test_per_example.cpp checks the other layers; float32 against the loop's
// float32 in another summation order: 1e-4 relative plus a 1e-6 floor, as there.
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/mnist.h"
#include "influence/loop_gradients.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "nn/spec.h"

namespace lethe::repair {
namespace {

data::ImageSet random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = c, s.height = h, s.width = w, s.num_classes = 4;
  Rng rng(seed);
  for (int64_t i = 0; i < n * c * h * w; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-0.5, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(4)));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

// ResNet-9's shape at toy width: conv-bn-relu, a stride-2 conv, a residual block x + body(x),
// max pooling, an unpadded conv, global max pooling, a linear head without bias, × 0.2.
const char* kTinyResNet9 = R"({"format": "lethe.model/1", "name": "tiny-resnet9", "input": [3, 10, 9], "classes": 4,
  "layers": [{"type": "conv2d", "name": "0.0", "in": 3, "out": 4, "kernel": 3, "padding": 1, "bias": false},
             {"type": "batchnorm2d", "name": "0.1", "channels": 4},
             {"type": "relu"},
             {"type": "conv2d", "name": "1.0", "in": 4, "out": 6, "kernel": 5, "stride": 2, "padding": 2, "bias": false},
             {"type": "batchnorm2d", "name": "1.1", "channels": 6},
             {"type": "relu"},
             {"type": "residual", "name": "2", "relu": false, "body": [
               {"type": "conv2d", "name": "module.0.0", "in": 6, "out": 6, "kernel": 3, "padding": 1, "bias": false},
               {"type": "batchnorm2d", "name": "module.0.1", "channels": 6},
               {"type": "relu"}]},
             {"type": "maxpool2d", "kernel": 2},
             {"type": "conv2d", "name": "6.0", "in": 6, "out": 5, "kernel": 1, "padding": 0},
             {"type": "relu"},
             {"type": "global_maxpool2d"},
             {"type": "linear", "name": "9", "in": 5, "out": 4, "bias": false},
             {"type": "scale", "factor": 0.2}]})";

TEST(ResNet9PerExample, GradientsThroughGlobalMaxPoolAndScaleMatchTheLoop) {
  Rng rng(91);
  auto model = build_net(parse_net_spec(kTinyResNet9, "tiny"), rng);
  // Non-trivial running statistics, so a model left in training mode would show.
  for (auto& b : model->named_buffers())
    if (b.name.find("running_mean") != std::string::npos) {
      float* d = b.tensor.data();  // the module's own storage
      for (int64_t k = 0; k < b.tensor.numel(); ++k) d[k] = static_cast<float>(rng.uniform(-0.2, 0.2));
    }
  const data::ImageSet set = random_images(7, 3, 10, 9, 92);
  const auto ref = loop_gradients(*model, set);
  const int64_t p = static_cast<int64_t>(ref[0].size());
  double norm = 0;
  for (const auto& row : ref)
    for (double g : row) norm += g * g;
  ASSERT_GT(norm, 1e-8);  // gradients that a wrong routing would change
  for (int64_t batch : {1, 3, 64}) {
    PassOptions opt;
    opt.batch = batch;
    const auto g = per_example_gradients(*model, set, 0, set.n, opt);
    ASSERT_EQ(static_cast<int64_t>(g.size()), set.n * p);
    for (int64_t i = 0; i < set.n; ++i)
      for (int64_t j = 0; j < p; ++j)
        ASSERT_NEAR(g[i * p + j], ref[i][j], 1e-4 * std::abs(ref[i][j]) + 1e-6)
            << "example " << i << " param " << j << " batch " << batch;
  }
}

}  // namespace
}  // namespace lethe::repair
