// LeakyReLU (nn/layers/leaky_relu.cpp), a layer type that is one file: its forward against the
// definition in double, its backward pass and forward derivative against finite differences,
// and a spec that names it builds, round-trips and trains a step.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "influence/jvp.h"
#include "nn/activations.h"
#include "nn/optim.h"
#include "nn/spec.h"
#include "gradcheck.h"

namespace lethe {
namespace {

constexpr double kSlope = 0.01;  // torch.nn.LeakyReLU's default

std::unique_ptr<Module> make_layer() {
  const ActivationType* type = find_activation("leaky_relu");
  if (!type) throw std::runtime_error("leaky_relu is not registered");
  return type->make();
}

const char* kSpec = R"({"format": "lethe.model/1", "name": "leaky", "input": [1, 6, 6], "classes": 3,
  "layers": [{"type": "conv2d", "name": "conv", "in": 1, "out": 4, "kernel": 3, "padding": 1},
             {"type": "leaky_relu"},
             {"type": "flatten"},
             {"type": "linear", "name": "head", "in": 144, "out": 3}]})";

TEST(LeakyRelu, ForwardIsXAboveZeroAndSlopeTimesXBelow) {
  Rng rng(71);
  auto layer = make_layer();
  EXPECT_EQ(layer->describe(), "LeakyReLU(negative_slope=0.01)");
  const Tensor x = testing::random_tensor({3, 2, 5}, rng, -4.0, 4.0);
  const auto in = x.to_vector(), out = layer->forward(x).to_vector();
  int negatives = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double want = in[i] > 0 ? in[i] : kSlope * in[i];
    negatives += in[i] < 0;
    // One float rounding (of the product α x) separates the two: 1e-7 relative.
    EXPECT_NEAR(out[i], want, 1e-7 * std::abs(want)) << "at " << in[i];
  }
  EXPECT_GT(negatives, 5);  // both sides of the kink were probed
}

TEST(LeakyRelu, BackwardMatchesFiniteDifferences) {
  // Values kept 0.05 from the kink, so the central difference (h = 1e-2) never straddles it
  // and is exact for a piecewise-linear map up to float rounding: gradcheck.h's tolerances.
  Rng rng(72);
  auto layer = make_layer();
  Tensor x = testing::random_away_from_zero({4, 3, 3}, rng);
  x.set_requires_grad(true);
  testing::expect_gradients_match([&](const std::vector<Tensor>& in) { return layer->forward(in[0]); }, {x}, rng);
}

TEST(LeakyRelu, JvpMatchesFiniteDifferencesOfTheLogits) {
  Rng rng(73);
  auto model = build_net(parse_net_spec(kSpec, "leaky"), rng);
  model->train(false);
  const Tensor x = testing::random_tensor({2, 1, 6, 6}, rng);
  const std::vector<float> theta = flatten_params(*model);
  std::vector<float> v(theta.size());
  for (auto& e : v) e = static_cast<float>(rng.uniform(-1.0, 1.0));
  const auto [logits, jv] = repair::jvp(*model, x, v);

  // The central difference of a map bilinear in (conv, head) parameters and piecewise linear in
  // the pre-activations is exact up to float rounding (~1e-7 / ε = 1e-4 here) as long as no
  // pre-activation crosses the kink within ±ε v: checked first, not assumed.
  const double eps = 1e-3;
  {
    auto& seq = dynamic_cast<Sequential&>(*model);
    const ParameterDirection direction(*model, v);
    Tensor h = x, dh = Tensor::zeros(x.shape());
    seq.layer(0).jvp(h, dh, direction);
    const auto z = h.to_vector(), dz = dh.to_vector();
    for (size_t i = 0; i < z.size(); ++i)
      ASSERT_GT(std::abs(z[i]), 4 * eps * std::abs(dz[i])) << "pre-activation " << i << " is too near the kink";
  }
  auto at = [&](double step) {
    std::vector<float> moved(theta.size());
    for (size_t j = 0; j < theta.size(); ++j) moved[j] = static_cast<float>(theta[j] + step * v[j]);
    assign_params(*model, moved);
    return model->forward(x).to_vector();
  };
  const auto plus = at(eps), minus = at(-eps);
  assign_params(*model, theta);
  const auto got = jv.to_vector();
  ASSERT_EQ(got.size(), plus.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double numeric = (static_cast<double>(plus[i]) - minus[i]) / (2 * eps);
    EXPECT_NEAR(got[i], numeric, 1e-3 + 1e-3 * std::abs(numeric)) << "logit " << i;
  }
  EXPECT_EQ(logits.to_vector(), model->forward(x).to_vector());
}

TEST(LeakyRelu, ASpecNamingItBuildsRoundTripsAndTrainsAStep) {
  const NetSpec spec = parse_net_spec(kSpec, "leaky");
  EXPECT_EQ(canonical_spec(parse_net_spec(canonical_spec(spec), "canonical")), canonical_spec(spec));
  EXPECT_NE(canonical_spec(spec).find("\"leaky_relu\""), std::string::npos);
  Rng rng(74);
  auto model = build_net(spec, rng);
  EXPECT_NE(model->describe().find("LeakyReLU(negative_slope=0.01)"), std::string::npos);
  const Tensor x = testing::random_tensor({8, 1, 6, 6}, rng);
  const Labels labels(std::vector<int32_t>{0, 1, 2, 0, 1, 2, 0, 1});
  auto loss_of = [&] { return mean(cross_entropy(model->forward(x), labels)); };
  Sgd sgd(model->parameters(), SgdHyper{0.05f});
  model->zero_grad();
  Tensor loss = loss_of();
  const float before = loss.to_vector()[0];
  loss.backward(Tensor::full(loss.shape(), 1.0f));
  // The gradient reaches the convolution through the activation's two sides.
  double conv_grad = 0;
  for (float g : model->named_parameters().front().tensor.grad().to_vector()) conv_grad += std::abs(g);
  EXPECT_GT(conv_grad, 0.0);
  sgd.step();
  // A small step down the gradient of a loss that is smooth almost everywhere lowers it.
  EXPECT_LT(loss_of().to_vector()[0], before);
}

TEST(LeakyRelu, ASpecRefusesFieldsItDoesNotTake) {
  EXPECT_THROW(parse_net_spec(R"({"format": "lethe.model/1", "name": "s", "input": [1, 2, 2], "classes": 4,
    "layers": [{"type": "flatten"}, {"type": "leaky_relu", "negative_slope": 0.2}]})", "s.json"), Error);
}

}  // namespace
}  // namespace lethe
