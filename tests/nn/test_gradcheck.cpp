// Every differentiable op's backward against central finite differences (see gradcheck.h for
// the tolerances), on random shapes with odd sizes.
#include "gradcheck.h"

#include "nn/models.h"

namespace lethe {
namespace {

using testing::distinct_values;
using testing::expect_gradients_match;
using testing::random_away_from_zero;
using testing::random_tensor;

Tensor leaf(Tensor t) { return t.set_requires_grad(true), t; }

TEST(GradCheck, ElementwiseOps) {
  Rng rng(1);
  const Shape s{3, 5, 7};
  auto a = leaf(random_tensor(s, rng)), b = leaf(random_tensor(s, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, b}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, {a, b}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, {a, b}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return scale(in[0], -2.5f); }, {a}, rng);
  // The same tensor on both sides: gradients from both uses must add up (d(x*x) = 2x).
  expect_gradients_match([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {a}, rng);
}

TEST(GradCheck, Relu) {
  Rng rng(2);
  auto x = leaf(random_away_from_zero({4, 3, 5, 5}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return relu(in[0]); }, {x}, rng);
}

TEST(GradCheck, SumAndMean) {
  Rng rng(3);
  auto x = leaf(random_tensor({6, 11}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return sum(in[0]); }, {x}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return mean(in[0]); }, {x}, rng);
}

TEST(GradCheck, LinearWithAndWithoutBias) {
  Rng rng(4);
  auto x = leaf(random_tensor({7, 13}, rng)), w = leaf(random_tensor({5, 13}, rng)), b = leaf(random_tensor({5}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1], Tensor()); }, {x, w}, rng);
}

struct ConvCase {
  int64_t n, c, h, w, co, k, stride, pad;
};

class ConvGradCheck : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradCheck, MatchesFiniteDifferences) {
  const ConvCase p = GetParam();
  Rng rng(static_cast<uint64_t>(p.c * 131 + p.k * 17 + p.stride * 7 + p.pad));
  auto x = leaf(random_tensor({p.n, p.c, p.h, p.w}, rng));
  auto w = leaf(random_tensor({p.co, p.c, p.k, p.k}, rng));
  auto b = leaf(random_tensor({p.co}, rng));
  const int64_t stride = p.stride, pad = p.pad;
  expect_gradients_match(
      [stride, pad](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], stride, pad); }, {x, w, b}, rng);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvGradCheck,
                         ::testing::Values(ConvCase{2, 1, 8, 8, 3, 5, 1, 2},   // the model's first layer, small
                                           ConvCase{3, 5, 11, 9, 4, 3, 2, 1},  // odd sizes, stride 2
                                           ConvCase{2, 3, 7, 10, 2, 3, 1, 0},  // no padding
                                           ConvCase{2, 4, 6, 5, 3, 1, 1, 0},   // pointwise (no unfolding)
                                           ConvCase{1, 2, 9, 9, 2, 4, 3, 2})); // even kernel, stride 3

TEST(GradCheck, MaxPool) {
  Rng rng(5);
  auto x = leaf(distinct_values({2, 3, 8, 8}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 2, 2); }, {x}, rng);
  auto odd = leaf(distinct_values({2, 2, 9, 7}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2); }, {odd}, rng);
}

TEST(GradCheck, ReshapeAndFlatten) {
  Rng rng(6);
  auto x = leaf(random_tensor({3, 2, 4, 5}, rng));
  expect_gradients_match([](const std::vector<Tensor>& in) { return mul(flatten(in[0]), flatten(in[0])); }, {x}, rng);
  expect_gradients_match([](const std::vector<Tensor>& in) { return in[0].reshape({-1, 6}); }, {x}, rng);
}

TEST(GradCheck, LogSoftmaxNllAndCrossEntropy) {
  Rng rng(7);
  auto z = leaf(random_tensor({6, 10}, rng, -3.0, 3.0));
  Labels labels({0, 3, 9, 9, 1, 5});
  expect_gradients_match([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {z}, rng);
  expect_gradients_match([&](const std::vector<Tensor>& in) { return nll_loss(log_softmax(in[0]), labels); }, {z}, rng);
  expect_gradients_match([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels); }, {z}, rng);
}

TEST(GradCheck, WholeMnistCnnOnSampledParameters) {
  Rng init(8);
  auto model = make_mnist_cnn(init);
  Rng rng(9);
  Tensor x = random_tensor({3, 1, 28, 28}, rng);
  Labels labels({1, 7, 4});
  auto params = model->parameters();
  // Through the whole network the loss is piecewise smooth; h = 3e-3 keeps a nudge from
  // crossing a relu or pooling boundary for almost every coordinate; tolerance is looser to
  // absorb the accumulated float32 rounding of four layers.
  testing::GradCheckOptions opt;
  opt.h = 3e-3;
  opt.atol = 5e-3;
  opt.rtol = 2e-2;
  opt.max_coords = 12;
  expect_gradients_match(
      [&](const std::vector<Tensor>&) { return mean(cross_entropy(model->forward(x), labels)); }, params, rng, opt);
}

}  // namespace
}  // namespace lethe
