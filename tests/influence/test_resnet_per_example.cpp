// Per-example quantities through a width-reduced ResNet-18 (BatchNorm in evaluation mode,
// residual sums, projection shortcuts, global pooling) against a loop of single-example
// backward passes in evaluation mode. As in test_per_example.cpp, the two differ only in float32
// summation order, so agreement is asserted to 1e-4 relative plus a small absolute floor.
#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>

#include "nn/autograd.h"
#include "nn/models.h"
#include "nn/resnet.h"
#include "learning/train.h"
#include "influence/jvp.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "util/error.h"
#include "influence/resnet_fixture.h"
#include "influence/loop_gradients.h"

namespace lethe::repair {
namespace {

void expect_close(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-4 * std::abs(want) + 1e-6) << what;
}

class ResNetPerExample : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = small_resnet(31);
    set_ = resnet_images(7, 8, 32);
    ref_ = loop_gradients(*model_, set_);
    p_ = static_cast<int64_t>(ref_[0].size());
    layout_ = ParamLayout::of(*model_);
  }
  std::unique_ptr<Module> model_;
  data::ImageSet set_;
  std::vector<std::vector<double>> ref_;
  int64_t p_ = 0;
  ParamLayout layout_;
};

TEST_F(ResNetPerExample, GradientsMatchTheLoopForEveryBatchSizeAndLeaveTheModeAlone) {
  ASSERT_TRUE(model_->training());
  const auto buffers = snapshot_buffers(*model_);
  for (int64_t batch : {1, 3, 64}) {
    PassOptions opt;
    opt.batch = batch;
    const auto g = per_example_gradients(*model_, set_, 0, set_.n, opt);
    ASSERT_EQ(static_cast<int64_t>(g.size()), set_.n * p_);
    for (int64_t i = 0; i < set_.n; ++i)
      for (int64_t j = 0; j < p_; j += 3)
        ASSERT_NEAR(g[i * p_ + j], ref_[i][j], 1e-4 * std::abs(ref_[i][j]) + 1e-6)
            << "example " << i << " param " << j << " batch " << batch;
  }
  // Every BatchNorm γ and β coordinate, not a stride through them.
  const auto g = per_example_gradients(*model_, set_, 0, set_.n, PassOptions{4, {}});
  for (size_t k = 0; k < layout_.names.size(); ++k) {
    if (layout_.shapes[k].size() != 1 || layout_.names[k].rfind("fc.", 0) == 0) continue;
    for (int64_t j = layout_.offsets[k]; j < layout_.offsets[k] + layout_.shapes[k][0]; ++j)
      for (int64_t i = 0; i < set_.n; ++i)
        expect_close(g[i * p_ + j], ref_[i][j], fmt::format("{} example {}", layout_.names[k], i));
  }
  EXPECT_TRUE(model_->training()) << "the engine must restore the caller's mode";
  const auto after = model_->named_buffers();
  for (size_t k = 0; k < after.size(); ++k)
    EXPECT_EQ(after[k].tensor.to_vector(), buffers[k].to_vector()) << after[k].name << " moved";
}

TEST_F(ResNetPerExample, DotsNormsFisherAndSummedGradient) {
  Rng rng(33);
  const int64_t q = 2;
  std::vector<float> queries(static_cast<size_t>(q * p_));
  for (auto& v : queries) v = static_cast<float>(rng.uniform(-1, 1));
  for (int64_t batch : {2, 7}) {
    const auto dots = per_example_dots(*model_, set_, queries, q, PassOptions{batch, {}});
    for (int64_t i = 0; i < set_.n; ++i)
      for (int64_t j = 0; j < q; ++j) {
        double want = 0;
        for (int64_t k = 0; k < p_; ++k) want += ref_[i][k] * queries[j * p_ + k];
        EXPECT_NEAR(dots[i * q + j], want, 1e-4 * std::abs(want) + 1e-5) << "example " << i << " query " << j;
      }
  }
  const auto norms = per_example_sq_norms(*model_, set_, PassOptions{3, {}});
  for (int64_t i = 0; i < set_.n; ++i) {
    double want = 0;
    for (double v : ref_[i]) want += v * v;
    expect_close(norms[i], want, fmt::format("norm of example {}", i));
  }
  const auto f = diagonal_fisher(*model_, set_, {}, PassOptions{4, {}});
  for (int64_t j = 0; j < p_; ++j) {
    double want = 0;
    for (const auto& g : ref_) want += g[j] * g[j];
    want /= static_cast<double>(set_.n);
    ASSERT_NEAR(f[j], want, 1e-4 * want + 1e-9) << "parameter " << j;
  }
  const auto total = summed_gradient(*model_, set_, PassOptions{3, {}});
  for (int64_t j = 0; j < p_; j += 2) {
    double want = 0;
    for (const auto& g : ref_) want += g[j];
    expect_close(total[j], want, fmt::format("summed gradient {}", j));
  }
}

TEST_F(ResNetPerExample, KfacBatchNormBlocksAreTheExactPerChannelFisher) {
  const Kfac k = kfac_factors(*model_, set_, {}, PassOptions{3, {}});
  int bn_layers = 0;
  for (const auto& l : k.layers) {
    if (!l.channel_pairs) continue;
    ++bn_layers;
    for (int64_t c = 0; c < l.out; ++c) {
      const int64_t jg = l.offset + c, jb = l.offset + l.out + c;
      double gg = 0, gb = 0, bb = 0;
      for (const auto& g : ref_) gg += g[jg] * g[jg], gb += g[jg] * g[jb], bb += g[jb] * g[jb];
      const double n = static_cast<double>(set_.n);
      expect_close(l.pairs[4 * c], gg / n, l.name + " γγ");
      expect_close(l.pairs[4 * c + 1], gb / n, l.name + " γβ");
      expect_close(l.pairs[4 * c + 3], bb / n, l.name + " ββ");
    }
  }
  EXPECT_EQ(bn_layers, 20);  // every BatchNorm of ResNet-18, shortcuts included
  // The damped inverse undoes the damped product on a BatchNorm pair and elsewhere.
  Rng rng(34);
  std::vector<double> v(static_cast<size_t>(p_));
  for (auto& e : v) e = rng.uniform(-1, 1);
  const double damping = 0.1;
  auto fv = kfac_multiply(k, v);
  for (size_t j = 0; j < v.size(); ++j) fv[j] += damping * v[j];
  const auto back = kfac_apply(k, fv, damping);
  for (size_t j = 0; j < v.size(); j += 5) EXPECT_NEAR(back[j], v[j], 1e-6 * (1 + std::abs(v[j]))) << j;
}

TEST_F(ResNetPerExample, JvpIsTheAdjointOfTheBackwardPassAndGgnIsSymmetric) {
  Rng rng(35);
  std::vector<int64_t> idx{0, 1, 2, 3};
  Tensor x = batch_images(set_, idx, Device::CPU, nullptr);
  std::vector<float> v(static_cast<size_t>(p_));
  for (auto& e : v) e = static_cast<float>(rng.uniform(-1, 1));
  const auto [z, dz] = jvp(*model_, x, v);
  std::vector<float> u(static_cast<size_t>(z.numel()));
  for (auto& e : u) e = static_cast<float>(rng.uniform(-1, 1));
  ModeGuard evaluation_mode(*model_, false);
  model_->zero_grad();
  Tensor logits = model_->forward(x);
  EXPECT_EQ(logits.to_vector(), z.to_vector());
  logits.backward(Tensor::from_vector(logits.shape(), u));
  const auto jtu = flatten_grads(*model_);
  model_->zero_grad();
  const auto jv = dz.to_vector();
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < u.size(); ++i) lhs += static_cast<double>(u[i]) * jv[i];
  for (size_t j = 0; j < v.size(); ++j) rhs += static_cast<double>(jtu[j]) * v[j];
  EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::abs(rhs)));
  // uᵀ G w = wᵀ G u for the Gauss-Newton matrix G.
  std::vector<double> a(static_cast<size_t>(p_)), b(static_cast<size_t>(p_));
  for (auto& e : a) e = rng.uniform(-1, 1);
  for (auto& e : b) e = rng.uniform(-1, 1);
  const auto ga = ggn_vector_product(*model_, set_, a, PassOptions{4, {}});
  const auto gb = ggn_vector_product(*model_, set_, b, PassOptions{4, {}});
  double ab = 0, ba = 0;
  for (int64_t j = 0; j < p_; ++j) ab += b[j] * ga[j], ba += a[j] * gb[j];
  EXPECT_NEAR(ab, ba, 1e-4 * (std::abs(ab) + 1e-3));
}

TEST(ResNetPerExampleRefusals, TrainingModeBatchNormCannotBeCaptured) {
  Rng rng(36);
  BatchNorm2d bn(2);
  LayerCapture capture;
  bn.capture = &capture;
  EXPECT_THROW(bn.forward(Tensor::zeros({2, 2, 2, 2})), Error);
  bn.eval();
  EXPECT_NO_THROW(bn.forward(Tensor::zeros({2, 2, 2, 2})));
  bn.capture = nullptr;
}

}  // namespace
}  // namespace lethe::repair
