// BatchNorm2d, global average pooling, the residual block and ResNet-18: values against hand
// computations, gradients against central differences (tests/nn/gradcheck.h), modes, names and
// checkpoints with buffers.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "gradcheck.h"
#include "learning/train.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/resnet.h"
#include "nn/safetensors.h"
#include "util/error.h"

namespace lethe {
namespace {

using testing::expect_gradients_match;
using testing::random_tensor;

// Running statistics away from the batch's own, so evaluation mode differs from training mode.
void randomise_statistics(Module& model, Rng& rng) {
  for (auto& b : model.named_buffers()) {
    if (b.integer) continue;
    const bool var = b.name.find("running_var") != std::string::npos;
    std::vector<float> v(static_cast<size_t>(b.tensor.numel()));
    for (auto& x : v) x = static_cast<float>(var ? rng.uniform(0.5, 2.0) : rng.uniform(-0.3, 0.3));
    b.tensor.copy_(Tensor::from_vector(b.tensor.shape(), v));
  }
  for (auto& p : model.named_parameters())
    if (p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos) {
      std::vector<float> v(static_cast<size_t>(p.tensor.numel()));
      const bool weight = p.name.find("weight") != std::string::npos;
      for (auto& x : v) x = static_cast<float>(weight ? rng.uniform(0.5, 1.5) : rng.uniform(-0.2, 0.2));
      p.tensor.copy_(Tensor::from_vector(p.tensor.shape(), v));
    }
}

TEST(BatchNorm, TrainingModeNormalisesWithBatchStatisticsAndUpdatesRunningAverages) {
  // One channel of 2 examples x 2 positions: values 1, 2, 3, 6 (mean 3, biased var 3.5,
  // unbiased 14/3); a second channel is constant 5 (var 0: x̂ = 0, so y = β).
  const std::vector<float> x{1, 2, 5, 5, 3, 6, 5, 5};
  BatchNorm2d bn(2);
  bn.weight.copy_(Tensor::from_vector({2}, std::vector<float>{2.0f, 1.0f}));
  bn.bias.copy_(Tensor::from_vector({2}, std::vector<float>{0.5f, -1.0f}));
  const auto y = bn.forward(Tensor::from_vector({2, 2, 1, 2}, x)).to_vector();
  const double invstd = 1.0 / std::sqrt(3.5 + 1e-5);
  const std::vector<double> want{2 * (1 - 3) * invstd + 0.5, 2 * (2 - 3) * invstd + 0.5, -1, -1,
                                 2 * (3 - 3) * invstd + 0.5, 2 * (6 - 3) * invstd + 0.5, -1, -1};
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], want[i], 1e-5) << i;
  const auto mean = bn.running_mean.to_vector(), var = bn.running_var.to_vector();
  EXPECT_NEAR(mean[0], 0.1 * 3, 1e-6);
  EXPECT_NEAR(mean[1], 0.1 * 5, 1e-6);
  EXPECT_NEAR(var[0], 0.9 * 1 + 0.1 * 14.0 / 3.0, 1e-6);  // unbiased, as PyTorch
  EXPECT_NEAR(var[1], 0.9, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1.0f);

  // Evaluation mode uses the running statistics and leaves them alone.
  bn.eval();
  const auto ye = bn.forward(Tensor::from_vector({2, 2, 1, 2}, x)).to_vector();
  EXPECT_NEAR(ye[0], 2 * (1 - mean[0]) / std::sqrt(var[0] + 1e-5) + 0.5, 1e-5);
  EXPECT_NEAR(ye[2], 1 * (5 - mean[1]) / std::sqrt(var[1] + 1e-5) - 1.0, 1e-5);
  EXPECT_EQ(bn.running_mean.to_vector(), mean);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1.0f);
}

TEST(BatchNorm, TrainingModeRefusesOneValuePerChannel) {
  BatchNorm2d bn(3);
  EXPECT_THROW(bn.forward(Tensor::zeros({1, 3, 1, 1})), Error);
  bn.eval();
  EXPECT_NO_THROW(bn.forward(Tensor::zeros({1, 3, 1, 1})));
}

TEST(BatchNorm, GradientsInTrainingMode) {
  // The batch statistics depend on x, so dx carries the two mean terms; a wrong one shows here.
  Rng rng(1);
  Tensor x = random_tensor({3, 2, 3, 2}, rng).set_requires_grad(true);
  Tensor w = random_tensor({2}, rng, 0.5, 1.5).set_requires_grad(true);
  Tensor b = random_tensor({2}, rng).set_requires_grad(true);
  Tensor rm = Tensor::zeros({2}), rv = Tensor::full({2}, 1.0f);
  expect_gradients_match(
      [&](const std::vector<Tensor>& in) { return batch_norm2d(in[0], in[1], in[2], rm, rv, true, 0.1, 1e-5); },
      {x, w, b}, rng);
}

TEST(BatchNorm, GradientsInEvaluationMode) {
  Rng rng(2);
  Tensor x = random_tensor({3, 2, 3, 2}, rng).set_requires_grad(true);
  Tensor w = random_tensor({2}, rng, 0.5, 1.5).set_requires_grad(true);
  Tensor b = random_tensor({2}, rng).set_requires_grad(true);
  Tensor rm = Tensor::from_vector({2}, std::vector<float>{0.3f, -0.2f});
  Tensor rv = Tensor::from_vector({2}, std::vector<float>{0.7f, 1.8f});
  expect_gradients_match(
      [&](const std::vector<Tensor>& in) { return batch_norm2d(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5); },
      {x, w, b}, rng);
}

TEST(GlobalAvgPool, ValuesAndGradient) {
  Tensor x = Tensor::from_vector({1, 2, 2, 2}, std::vector<float>{1, 2, 3, 4, -1, 0, 0, 5});
  EXPECT_EQ(global_avg_pool2d(x).to_vector(), (std::vector<float>{2.5f, 1.0f}));
  Rng rng(3);
  Tensor y = random_tensor({2, 3, 4, 3}, rng).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0]); }, {y}, rng);
}

// Gradient checks through modules: the module's own parameter tensors are the probed inputs
// (Tensor handles alias them, so a nudge to one is a nudge to the model). ReLU kinks: a nudge
// that moves some pre-activation across 0 disagrees, so h is small — 3e-4 for one block (at
// 3e-3 several coordinates of these seeds cross a kink), 1e-3 for the ResNet, whose deeper
// float32 forward pass has more rounding (≈ 1e-7 |L| / h) — and the tolerance covers both.
testing::GradCheckOptions module_check(double h) {
  testing::GradCheckOptions o;
  o.h = h;
  o.atol = o.rtol = 5e-3;
  o.max_coords = 12;
  return o;
}

void check_module(Module& m, const Tensor& x, const std::vector<std::string>& names, Rng& rng, double h = 3e-4) {
  std::vector<Tensor> inputs{x};
  for (auto& p : m.named_parameters())
    for (const auto& n : names)
      if (p.name == n) inputs.push_back(p.tensor);
  ASSERT_EQ(inputs.size(), names.size() + 1) << "a named parameter is missing";
  expect_gradients_match([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs, rng, module_check(h));
}

TEST(BasicBlock, GradientsWithProjectionShortcutInBothModes) {
  Rng rng(4);
  BasicBlock block(2, 3, 2, rng);
  ASSERT_TRUE(block.downsample);
  randomise_statistics(block, rng);
  Tensor x = random_tensor({2, 2, 5, 5}, rng).set_requires_grad(true);
  const std::vector<std::string> names{"conv1.weight", "bn1.weight", "bn2.bias", "downsample.0.weight",
                                       "downsample.1.weight", "downsample.1.bias"};
  check_module(block, x, names, rng);
  block.eval();
  check_module(block, x, names, rng);
}

TEST(BasicBlock, IdentityShortcutAddsTheInput) {
  Rng rng(5);
  BasicBlock block(3, 3, 1, rng);
  EXPECT_FALSE(block.downsample);
  randomise_statistics(block, rng);
  block.eval();
  Tensor x = random_tensor({2, 3, 4, 4}, rng).set_requires_grad(true);
  check_module(block, x, {"conv1.weight", "bn1.bias", "conv2.weight", "bn2.weight"}, rng);
  // With conv2's weight and bn2's running mean zero the body contributes bn2's β only:
  // out = relu(x + β).
  block.conv2->weight.fill_(0.0f);
  block.bn2->running_mean.fill_(0.0f);
  const auto beta = block.bn2->bias.to_vector();
  const auto in = x.to_vector(), out = block.forward(x).to_vector();
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(out[i], std::max(0.0f, in[i] + beta[(i / 16) % 3]), 1e-6);
}

TEST(ResNet18, WidthReducedGradientsInEvaluationMode) {
  Rng rng(6);
  auto net = make_resnet18(2, 10, rng);
  randomise_statistics(*net, rng);
  net->eval();
  Tensor x = random_tensor({2, 3, 16, 16}, rng).set_requires_grad(true);
  check_module(*net, x,
               {"conv1.weight", "bn1.weight", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                "layer3.1.bn1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"},
               rng, 1e-3);
}

// Training mode through the whole network. Central differences cannot check it in float32: the
// batch statistics of a small batch make the loss so curved that no step is both small enough
// for the truncation error and large enough for the rounding error (measured: 5-20% off at every
// h from 1e-2 to 1e-4, while the same net in evaluation mode agrees to 0.1%). An exact identity
// replaces them: every convolution of ResNet-18 feeds a BatchNorm, which in training mode undoes
// any scaling of it, so L(αW) = L(W) and ⟨∇_W L, W⟩ = 0 for every convolution weight W (and
// ⟨∇_x L, x⟩ = 0 for the input, as the stem has no bias) up to eps's 1e-5 share of the variance.
// The identity needs both of BatchNorm's statistics terms in the backward pass through all the
// residual sums; in evaluation mode, where it does not hold, the same measure is far from 0.
TEST(ResNet18, TrainingModeGradientsRespectBatchNormScaleInvariance) {
  Rng rng(16);
  auto net = make_resnet18(2, 10, rng);
  Tensor x = random_tensor({4, 3, 16, 16}, rng).set_requires_grad(true);
  std::vector<float> w(40);
  for (auto& v : w) v = static_cast<float>(rng.uniform(-1, 1));
  auto cosines = [&] {
    net->zero_grad();
    x.zero_grad();
    Tensor y = net->forward(x);
    y.backward(Tensor::from_vector(y.shape(), w));
    std::vector<double> out;
    auto cosine = [](const Tensor& a, const Tensor& g) {
      const auto av = a.to_vector(), gv = g.to_vector();
      double dot = 0, aa = 0, gg = 0;
      for (size_t i = 0; i < av.size(); ++i) dot += double(av[i]) * gv[i], aa += double(av[i]) * av[i], gg += double(gv[i]) * gv[i];
      return std::abs(dot) / std::sqrt(aa * gg);
    };
    out.push_back(cosine(x, x.grad()));
    for (auto& p : net->named_parameters())
      if (p.tensor.dim() == 4) out.push_back(cosine(p.tensor, p.tensor.grad()));
    return out;
  };
  const auto train = cosines();
  ASSERT_EQ(train.size(), 1u + 20u);  // the input and ResNet-18's 20 convolutions
  for (size_t k = 0; k < train.size(); ++k) EXPECT_LT(train[k], 1e-3) << "tensor " << k;
  net->eval();
  const auto eval = cosines();
  EXPECT_GT(*std::max_element(eval.begin(), eval.end()), 1e-2);
}

TEST(ResNet18, TorchvisionNamesAndSizes) {
  Rng rng(7);
  auto net = make_model("resnet18", rng);
  const auto params = net->named_parameters();
  const auto buffers = net->named_buffers();
  // torchvision's resnet18 state_dict: 62 parameters and 60 buffers (20 BatchNorms x 3).
  EXPECT_EQ(params.size(), 62u);
  EXPECT_EQ(buffers.size(), 60u);
  // 11,689,512 for ImageNet's form, less the 7x7 stem (9,408 -> 1,728) and 1000-way fc (513,000 -> 5,130).
  EXPECT_EQ(net->parameter_count(), 11173962);
  std::vector<std::string> names;
  for (auto& p : params) names.push_back(p.name);
  for (auto& b : buffers) names.push_back(b.name);
  for (const char* want : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
                           "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  EXPECT_EQ(params.front().name, "conv1.weight");
  EXPECT_EQ(params.back().name, "fc.bias");
  for (const char* absent : {"layer1.0.downsample.0.weight", "conv1.bias"})
    EXPECT_EQ(std::find(names.begin(), names.end(), absent), names.end()) << absent;
  const ModelSpec spec = model_spec("resnet18-w8");
  EXPECT_EQ(spec.channels, 3);
  EXPECT_EQ(spec.height, 32);
  EXPECT_EQ(spec.classes, 10);
  EXPECT_EQ(resnet18_width("resnet18-w8"), 8);
  for (const char* bad : {"resnet18-w", "resnet18-w0", "resnet18-w08", "resnet18-wx", "resnet34"})
    EXPECT_THROW(model_spec(bad), UsageError) << bad;
}

TEST(Modes, PropagateAndAreRestoredByTrainingAndEvaluation) {
  Rng rng(8);
  auto net = make_model("resnet18-w2", rng);
  EXPECT_TRUE(net->training());
  net->eval();
  auto* resnet = dynamic_cast<ResNet*>(net.get());
  ASSERT_NE(resnet, nullptr);
  EXPECT_FALSE(resnet->layer3->training());
  auto* block = dynamic_cast<BasicBlock*>(&resnet->layer2->layer(0));
  ASSERT_NE(block, nullptr);
  EXPECT_FALSE(block->downsample->layer(1).training());

  data::ImageSet set;
  set.n = 6, set.channels = 3, set.height = 8, set.width = 8, set.num_classes = 10;
  for (int64_t i = 0; i < set.n * 3 * 64; ++i) set.pixels.push_back(static_cast<float>(rng.uniform(-1, 1)));
  for (int64_t i = 0; i < set.n; ++i) set.labels.push_back(static_cast<int32_t>(i % 10)), set.source_index.push_back(i);
  // Evaluation leaves the running statistics alone; training moves them and restores the mode.
  const auto before = resnet->bn1->running_mean.to_vector();
  (void)evaluate(*net, set, 4);
  EXPECT_EQ(resnet->bn1->running_mean.to_vector(), before);
  TrainOptions opt;
  opt.epochs = 1;
  opt.batch = 3;
  train_classifier(*net, set, opt);
  EXPECT_NE(resnet->bn1->running_mean.to_vector(), before);
  EXPECT_EQ(resnet->bn1->num_batches_tracked.item(), 2.0f);
  EXPECT_FALSE(net->training());
}

TEST(ResNet18, CheckpointRoundTripKeepsBuffers) {
  Rng rng(9);
  auto net = make_model("resnet18-w2", rng);
  randomise_statistics(*net, rng);
  dynamic_cast<ResNet&>(*net).bn1->num_batches_tracked.fill_(7.0f);
  const auto path = (std::filesystem::temp_directory_path() / "lethe_resnet_ckpt.safetensors").string();
  save_checkpoint(path, *net, "resnet18-w2");
  const SafetensorsFile file = load_safetensors(path);
  const NamedArray* count = file.find("bn1.num_batches_tracked");
  ASSERT_NE(count, nullptr);
  EXPECT_EQ(count->dtype, DType::I64);  // as PyTorch stores it
  EXPECT_TRUE(count->shape.empty());
  EXPECT_EQ(count->values<int64_t>()[0], 7);
  ASSERT_NE(file.find("layer3.0.downsample.1.running_var"), nullptr);

  LoadedModel loaded = load_checkpoint(path, "resnet18-w2");
  const auto a = net->named_buffers(), b = loaded.model->named_buffers();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].tensor.to_vector(), b[i].tensor.to_vector()) << a[i].name;
  const auto pa = net->named_parameters(), pb = loaded.model->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].tensor.to_vector(), pb[i].tensor.to_vector()) << pa[i].name;
  net->eval();
  loaded.model->eval();
  Tensor x = random_tensor({2, 3, 8, 8}, rng);
  EXPECT_EQ(net->forward(x).to_vector(), loaded.model->forward(x).to_vector());

  // A file without the buffers (parameters only) is refused, naming the first missing one.
  SafetensorsFile params_only;
  for (const auto& arr : file.arrays)
    if (arr.name.find("running") == std::string::npos && arr.name.find("num_batches") == std::string::npos)
      params_only.arrays.push_back(arr);
  params_only.metadata = file.metadata;
  save_safetensors(path, params_only);
  try {
    (void)load_checkpoint(path, "resnet18-w2");
    ADD_FAILURE() << "loaded a checkpoint without running statistics";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("running_mean"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lethe
