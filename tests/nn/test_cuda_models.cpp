// Whole models on the GPU against the same models on the CPU: the MNIST CNN's training steps
// (forward, loss, backward, Adam), ResNet's BatchNorm in both modes with its running statistics,
// and train_classifier / evaluate end to end. The ops are checked one by one in
// tests/kernels/test_cuda_kernels.cpp; these catch what only a composition shows (a gradient
// left on the wrong device, a buffer not moved, an op without a CUDA path).
// Each test skips, with the reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/device.h"
#include "learning/train.h"
#include "nn/models.h"
#include "nn/ops.h"
#include "nn/optim.h"

namespace lethe {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason()

// |a - b| <= atol + rtol |b| everywhere, with the first offender in the message.
::testing::AssertionResult close(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " and " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::abs(static_cast<double>(a[i]) - b[i]);
    if (!(diff <= atol + rtol * std::abs(static_cast<double>(b[i]))))
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i] << " (of " << a.size()
                                           << ")";
  }
  return ::testing::AssertionSuccess();
}

// Two copies of one model, the second on the GPU: same parameters and buffers.
struct Twins {
  std::unique_ptr<Module> cpu, gpu;
};
Twins twins(const std::string& name, uint64_t seed) {
  Rng a(seed), b(seed);
  Twins t{make_model(name, a), make_model(name, b)};
  t.gpu->to(Device::CUDA);
  return t;
}

Tensor random_images(int64_t n, int64_t c, int64_t side, uint64_t seed, Device device) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n * c * side * side));
  for (auto& x : v) x = static_cast<float>(rng.uniform(-0.5, 1.0));
  return Tensor::from_vector({n, c, side, side}, v, device);
}

Labels random_labels(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (auto& v : y) v = static_cast<int32_t>(rng.below(10));
  return Labels(y);
}

void expect_parameters_close(Module& cpu, Module& gpu, double atol, double rtol, const std::string& when) {
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t k = 0; k < pc.size(); ++k) {
    EXPECT_EQ(pg[k].tensor.device(), Device::CUDA) << pg[k].name;
    EXPECT_TRUE(close(pg[k].tensor.to_vector(), pc[k].tensor.to_vector(), atol, rtol)) << when << ": " << pc[k].name;
  }
}

// At most `share` of all parameters differ by more than `atol`.
void expect_mostly_close(Module& cpu, Module& gpu, double atol, double share, const std::string& when) {
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  int64_t off = 0, total = 0;
  for (size_t k = 0; k < pc.size(); ++k) {
    const auto a = pg[k].tensor.to_vector(), b = pc[k].tensor.to_vector();
    ASSERT_EQ(a.size(), b.size()) << pc[k].name;
    for (size_t i = 0; i < a.size(); ++i) off += std::abs(static_cast<double>(a[i]) - b[i]) > atol;
    total += static_cast<int64_t>(a.size());
  }
  EXPECT_LE(static_cast<double>(off), share * static_cast<double>(total))
      << when << ": " << off << " of " << total << " parameters differ by more than " << atol;
}

void expect_gradients_close(Module& cpu, Module& gpu, double atol, double rtol) {
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t k = 0; k < pc.size(); ++k) {
    ASSERT_TRUE(pc[k].tensor.grad().defined()) << pc[k].name;
    ASSERT_TRUE(pg[k].tensor.grad().defined()) << pg[k].name;
    EXPECT_EQ(pg[k].tensor.grad().device(), Device::CUDA) << pg[k].name;
    EXPECT_TRUE(close(pg[k].tensor.grad().to_vector(), pc[k].tensor.grad().to_vector(), atol, rtol))
        << "gradient of " << pc[k].name;
  }
}

TEST(CudaModels, MnistCnnTrainingStepsMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto t = twins("mnist-cnn", 11);
  const Labels labels = random_labels(16, 12);
  const Tensor xc = random_images(16, 1, 28, 13, Device::CPU), xg = random_images(16, 1, 28, 13, Device::CUDA);
  Adam adam_c(t.cpu->parameters()), adam_g(t.gpu->parameters());
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    adam_c.zero_grad(), adam_g.zero_grad();
    Tensor logits_c = t.cpu->forward(xc), logits_g = t.gpu->forward(xg);
    ASSERT_EQ(logits_g.device(), Device::CUDA);
    EXPECT_TRUE(close(logits_g.to_vector(), logits_c.to_vector(), 1e-4, 1e-4)) << "logits";
    Tensor loss_c = mean(cross_entropy(logits_c, labels)), loss_g = mean(cross_entropy(logits_g, labels));
    EXPECT_NEAR(loss_g.item(), loss_c.item(), 1e-5 + 1e-5 * std::abs(loss_c.item()));
    loss_c.backward(), loss_g.backward();
    expect_gradients_close(*t.cpu, *t.gpu, 1e-5, 1e-3);
    adam_c.step(), adam_g.step();
    // Adam divides each gradient by its own running magnitude, so where a gradient is tiny its
    // rounding differences reach the update at full size: the parameters are held to 5% of one
    // step (lr 1e-3) everywhere, and to 1e-5 almost everywhere.
    expect_parameters_close(*t.cpu, *t.gpu, 5e-5, 0, "after the Adam step");
    expect_mostly_close(*t.cpu, *t.gpu, 1e-5, 0.01, "after the Adam step");
  }
}

TEST(CudaModels, ResNetMatchesCpuInTrainingAndEvaluationModes) {
  SKIP_WITHOUT_GPU();
  auto t = twins("resnet18-w8", 21);
  const Labels labels = random_labels(6, 22);
  const Tensor xc = random_images(6, 3, 32, 23, Device::CPU), xg = random_images(6, 3, 32, 23, Device::CUDA);
  // Training mode: batch statistics, and the running averages move.
  t.cpu->train(), t.gpu->train();
  Tensor loss_c = mean(cross_entropy(t.cpu->forward(xc), labels));
  Tensor loss_g = mean(cross_entropy(t.gpu->forward(xg), labels));
  EXPECT_NEAR(loss_g.item(), loss_c.item(), 1e-4 + 1e-4 * std::abs(loss_c.item()));
  loss_c.backward(), loss_g.backward();
  expect_gradients_close(*t.cpu, *t.gpu, 1e-4, 2e-3);
  const auto bc = t.cpu->named_buffers(), bg = t.gpu->named_buffers();
  ASSERT_EQ(bc.size(), bg.size());
  ASSERT_FALSE(bc.empty());
  for (size_t k = 0; k < bc.size(); ++k)
    EXPECT_TRUE(close(bg[k].tensor.to_vector(), bc[k].tensor.to_vector(), 1e-5, 1e-4)) << "buffer " << bc[k].name;
  // Evaluation mode: the running statistics just updated.
  t.cpu->eval(), t.gpu->eval();
  t.cpu->zero_grad(), t.gpu->zero_grad();
  Tensor logits_c = t.cpu->forward(xc), logits_g = t.gpu->forward(xg);
  EXPECT_TRUE(close(logits_g.to_vector(), logits_c.to_vector(), 1e-4, 1e-3)) << "evaluation-mode logits";
  loss_c = mean(cross_entropy(logits_c, labels)), loss_g = mean(cross_entropy(logits_g, labels));
  loss_c.backward(), loss_g.backward();
  expect_gradients_close(*t.cpu, *t.gpu, 1e-4, 2e-3);
}

data::ImageSet synthetic_set(int64_t n, uint64_t seed) {
  data::ImageSet set;
  set.n = n, set.channels = 1, set.height = 28, set.width = 28;
  Rng rng(seed);
  set.pixels.resize(static_cast<size_t>(n * 784));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t label = static_cast<int32_t>(rng.below(10));
    set.labels.push_back(label);
    set.source_index.push_back(i);
    // A learnable pattern: a bright row whose position is the label, over noise.
    for (int64_t p = 0; p < 784; ++p)
      set.pixels[static_cast<size_t>(i * 784 + p)] =
          static_cast<float>(rng.uniform(0, 0.3) + (p / 28 == 2 + 2 * label ? 0.7 : 0.0));
  }
  return set;
}

TEST(CudaModels, TrainClassifierAndEvaluateMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto t = twins("mnist-cnn", 31);
  const auto train = synthetic_set(256, 32), test = synthetic_set(128, 33);
  TrainOptions opt;
  opt.epochs = 2, opt.batch = 32, opt.seed = 34;
  const auto stats_c = train_classifier(*t.cpu, train, opt);
  const auto stats_g = train_classifier(*t.gpu, train, opt);
  ASSERT_EQ(stats_c.size(), stats_g.size());
  for (size_t e = 0; e < stats_c.size(); ++e)
    EXPECT_NEAR(stats_g[e].loss, stats_c[e].loss, 1e-3 + 1e-3 * stats_c[e].loss) << "epoch " << e + 1;
  EXPECT_LT(stats_g.back().loss, stats_g.front().loss) << "training on the GPU did not lower the loss";
  expect_parameters_close(*t.cpu, *t.gpu, 1e-3, 1e-2, "after two epochs");
  const EvalResult ec = evaluate(*t.cpu, test), eg = evaluate(*t.gpu, test);
  EXPECT_NEAR(eg.mean_loss, ec.mean_loss, 1e-3 + 1e-3 * ec.mean_loss);
  // Predictions may differ only where two logits are nearly tied.
  int64_t differ = 0;
  for (size_t i = 0; i < ec.predictions.size(); ++i) differ += ec.predictions[i] != eg.predictions[i];
  EXPECT_LE(differ, 2) << "of " << ec.predictions.size() << " predictions";
  EXPECT_TRUE(close(eg.losses, ec.losses, 1e-3, 1e-2)) << "per-example losses";
}

}  // namespace
}  // namespace lethe
