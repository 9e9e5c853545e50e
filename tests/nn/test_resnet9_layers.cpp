// The two parameter-free layer types ResNet-9 needs (nn/layers/global_maxpool2d.cpp,
// nn/layers/scale.cpp): forward against the definition, backward against central differences,
// forward derivative against the backward pass (the adjoint identity), spec fields and errors;
// and models/resnet9.json itself: it builds, has the parameters and state_dict names of the
// PyTorch network it describes, runs forward in both modes, and a step of SGD lowers its loss.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "influence/jvp.h"
#include "influence/params.h"
#include "nn/optim.h"
#include "nn/spec.h"
#include "gradcheck.h"

namespace lethe {
namespace {

std::string model_file(const std::string& name) { return std::string(LETHE_SOURCE_DIR) + "/models/" + name + ".json"; }

// A small spec with both layers behind a residual block without the ReLU after its sum, the
// shape of ResNet-9's head: conv → residual → global max pool → linear (no bias) → scale.
const char* kSpec = R"({"format": "lethe.model/1", "name": "head", "input": [2, 6, 5], "classes": 3,
  "layers": [{"type": "conv2d", "name": "conv", "in": 2, "out": 4, "kernel": 3, "padding": 1, "bias": false},
             {"type": "batchnorm2d", "name": "bn", "channels": 4},
             {"type": "relu"},
             {"type": "residual", "name": "res", "relu": false, "body": [
               {"type": "conv2d", "name": "a", "in": 4, "out": 4, "kernel": 3, "padding": 1},
               {"type": "relu"}]},
             {"type": "global_maxpool2d"},
             {"type": "linear", "name": "fc", "in": 4, "out": 3, "bias": false},
             {"type": "scale", "factor": 0.2}]})";

TEST(GlobalMaxPool, ForwardIsEachPlanesMaximumAndDescribesItself) {
  Rng rng(81);
  GlobalMaxPool2d pool;
  EXPECT_EQ(pool.describe(), "GlobalMaxPool2d()");
  const Tensor x = testing::random_tensor({3, 4, 5, 2}, rng, -3.0, 3.0);  // a non-square plane
  const Tensor y = pool.forward(x);
  ASSERT_EQ(y.shape(), (Shape{3, 4}));
  const auto in = x.to_vector(), out = y.to_vector();
  for (int64_t plane = 0; plane < 12; ++plane) {
    float want = in[static_cast<size_t>(plane * 10)];
    for (int64_t t = 1; t < 10; ++t) want = std::max(want, in[static_cast<size_t>(plane * 10 + t)]);
    EXPECT_EQ(out[static_cast<size_t>(plane)], want) << "plane " << plane;  // a selection: exact
  }
}

TEST(GlobalMaxPool, BackwardMatchesFiniteDifferencesAndRoutesTiesToTheFirst) {
  // Distinct values 0.05 apart: a nudge of h = 1e-2 never changes which element is the maximum,
  // so the central difference is exact up to float rounding (gradcheck.h's tolerances).
  Rng rng(82);
  Tensor x = testing::distinct_values({2, 3, 4, 3}, rng);
  x.set_requires_grad(true);
  testing::expect_gradients_match([](const std::vector<Tensor>& in) { return global_max_pool2d(in[0]); }, {x}, rng);

  // A tie: the plane's gradient goes whole to the first (row-major) maximum, as max pooling's.
  Tensor t = Tensor::from_vector({1, 1, 2, 2}, std::vector<float>{1.0f, 5.0f, 2.0f, 5.0f});
  t.set_requires_grad(true);
  global_max_pool2d(t).backward(Tensor::from_vector({1, 1}, std::vector<float>{3.0f}));
  EXPECT_EQ(t.grad().to_vector(), (std::vector<float>{0.0f, 3.0f, 0.0f, 0.0f}));
}

TEST(GlobalMaxPool, RefusesAnEmptyOrFlatInput) {
  EXPECT_THROW(global_max_pool2d(Tensor::zeros({2, 3})), Error);
  EXPECT_THROW(global_max_pool2d(Tensor::zeros({2, 3, 0, 4})), Error);
}

TEST(Scale, ForwardBackwardAndDescription) {
  Rng rng(83);
  Scale layer(0.2);
  EXPECT_EQ(layer.describe(), "Scale(factor=0.2)");
  Tensor x = testing::random_tensor({4, 5}, rng);
  const auto in = x.to_vector(), out = layer.forward(x).to_vector();
  // One float product with 0.2f, which is 0.2 to 1.5e-8 relative: 1e-7 relative in all.
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(out[i], 0.2 * in[i], 1e-7 * std::abs(in[i]) + 1e-12);
  x.set_requires_grad(true);
  testing::expect_gradients_match([&](const std::vector<Tensor>& v) { return layer.forward(v[0]); }, {x}, rng);
}

TEST(ResNet9Layers, JvpOfASpecWithBothIsTheAdjointOfItsBackwardPass) {
  // uᵀ (J v) = (Jᵀ u)ᵀ v: the forward derivative through the residual block without a ReLU, the
  // global max pool (the tangent of the chosen element) and the scale, against the reverse pass
  // that the gradient checks above verify. Float sums of a few hundred terms accumulated in
  // double: 1e-5 relative.
  Rng rng(84);
  auto model = build_net(parse_net_spec(kSpec, "head"), rng);
  model->train(false);
  const Tensor x = testing::random_tensor({3, 2, 6, 5}, rng);
  const std::vector<float> theta = flatten_params(*model);
  std::vector<float> v(theta.size());
  for (auto& e : v) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  const auto [z, dz] = repair::jvp(*model, x, v);
  std::vector<float> u(static_cast<size_t>(z.numel()));
  for (auto& e : u) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  model->zero_grad();
  Tensor logits = model->forward(x);
  EXPECT_EQ(logits.to_vector(), z.to_vector());
  logits.backward(Tensor::from_vector(logits.shape(), u));
  const auto jtu = repair::flatten_grads(*model);
  const auto jv = dz.to_vector();
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < u.size(); ++i) lhs += static_cast<double>(u[i]) * jv[i];
  for (size_t j = 0; j < v.size(); ++j) rhs += static_cast<double>(jtu[j]) * v[j];
  EXPECT_GT(std::abs(rhs), 1e-3);  // a direction the network responds to
  EXPECT_NEAR(lhs, rhs, 1e-5 * (1 + std::abs(rhs)));
}

TEST(ResNet9Layers, ASpecRoundTripsAndRefusesBadFields) {
  const NetSpec spec = parse_net_spec(kSpec, "head");
  const std::string canonical = canonical_spec(spec);
  EXPECT_EQ(canonical_spec(parse_net_spec(canonical, "canonical")), canonical);
  EXPECT_NE(canonical.find("\"global_maxpool2d\""), std::string::npos);
  EXPECT_NE(canonical.find("\"factor\":0.2"), std::string::npos);
  auto with = [](const std::string& layer) {
    return R"({"name": "s", "input": [1, 4, 4], "classes": 2, "layers": [)" + layer +
           R"(, {"type": "linear", "name": "fc", "in": 1, "out": 2}]})";
  };
  EXPECT_NO_THROW(parse_net_spec(with(R"({"type": "global_maxpool2d"})"), "s"));
  EXPECT_THROW(parse_net_spec(with(R"({"type": "global_maxpool2d", "kernel": 2})"), "s"), Error);
  const std::string scale_without_factor = R"({"name": "s", "input": [1, 1, 1], "classes": 1, "layers": [
    {"type": "flatten"}, {"type": "scale"}]})";
  try {
    parse_net_spec(scale_without_factor, "s.json");
    ADD_FAILURE() << "a scale without a factor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs \"factor\""), std::string::npos) << e.what();
  }
  const std::string huge = R"({"name": "s", "input": [1, 1, 1], "classes": 1, "layers": [
    {"type": "flatten"}, {"type": "scale", "factor": 1e9}]})";
  EXPECT_THROW(parse_net_spec(huge, "s.json"), Error);
  // Global max pooling needs images, as global average pooling does.
  const std::string on_features = R"({"name": "s", "input": [1, 2, 2], "classes": 4, "layers": [
    {"type": "flatten"}, {"type": "global_maxpool2d"}]})";
  EXPECT_THROW(parse_net_spec(on_features, "s.json"), Error);
}

// Kronfluence's and TRAK's ResNet-9 (3×32×32 → 10), counted by hand from its layers: convs
// 3·64·9 + 64·128·25 + 2·128·128·9 + 128·256·9 + 2·256·256·9 + 256·128·9 = 2,270,912 weights,
// BatchNorm γ and β 2·(64 + 128 + 2·128 + 256 + 2·256 + 128) = 2,688, the head 128·10 = 1,280.
constexpr int64_t kResNet9Parameters = 2270912 + 2688 + 1280;

TEST(ResNet9, TheSpecBuildsWithPyTorchsNamesAndParameterCount) {
  const NetSpec spec = load_net_spec(model_file("resnet9"));
  EXPECT_EQ(spec.name, "resnet9");
  Rng rng(85);
  auto model = build_net(spec, rng);
  int64_t count = 0;
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) {
    count += p.tensor.numel();
    names.insert(p.name);
  }
  EXPECT_EQ(count, kResNet9Parameters);
  EXPECT_EQ(kResNet9Parameters, 2274880);
  // The state_dict names of torch.nn.Sequential(conv_bn(...), ..., Residual(Sequential(...)), ...)
  for (const char* name : {"0.0.weight", "0.1.weight", "0.1.bias", "1.0.weight", "2.module.0.0.weight",
                           "2.module.1.1.bias", "3.0.weight", "5.module.1.0.weight", "6.1.weight", "9.weight"})
    EXPECT_TRUE(names.count(name)) << name;
  EXPECT_FALSE(names.count("9.bias"));
  std::set<std::string> buffers;
  for (const auto& b : model->named_buffers()) buffers.insert(b.name);
  EXPECT_TRUE(buffers.count("5.module.0.1.running_var"));
}

TEST(ResNet9, ForwardInBothModesAndAStepOfSgdLowersTheLoss) {
  Rng rng(86);
  auto model = build_net(load_net_spec(model_file("resnet9")), rng);
  const Tensor x = testing::random_tensor({4, 3, 32, 32}, rng);
  const Labels labels(std::vector<int32_t>{0, 3, 7, 9});
  auto loss_of = [&] { return mean(cross_entropy(model->forward(x), labels)); };
  Sgd sgd(model->parameters(), SgdHyper{0.05f});
  model->zero_grad();
  Tensor loss = loss_of();
  const float before = loss.to_vector()[0];
  EXPECT_TRUE(std::isfinite(before));
  loss.backward(Tensor::full(loss.shape(), 1.0f));
  double stem_grad = 0;
  for (float g : model->named_parameters().front().tensor.grad().to_vector()) stem_grad += std::abs(g);
  EXPECT_GT(stem_grad, 0.0);  // the gradient reaches the stem through the whole network
  sgd.step();
  EXPECT_LT(loss_of().to_vector()[0], before);
  model->train(false);
  const Tensor logits = model->forward(x);
  EXPECT_EQ(logits.shape(), (Shape{4, 10}));
}

}  // namespace
}  // namespace lethe
