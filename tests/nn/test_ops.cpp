// Forward values of the ops against direct (naive) definitions, and autograd mechanics.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.h"
#include "kernels/cpu/conv.h"
#include "nn/autograd.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {
namespace {

using testing::random_tensor;

// Direct cross-correlation, in double.
std::vector<double> naive_conv(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w,
                               const std::vector<float>& b) {
  std::vector<double> y(static_cast<size_t>(s.n * s.co * s.ho() * s.wo()));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t o = 0; o < s.co; ++o)
      for (int64_t oy = 0; oy < s.ho(); ++oy)
        for (int64_t ox = 0; ox < s.wo(); ++ox) {
          double acc = b[o];
          for (int64_t c = 0; c < s.c; ++c)
            for (int64_t ky = 0; ky < s.kh; ++ky)
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                acc += static_cast<double>(x[((n * s.c + c) * s.h + iy) * s.w + ix]) *
                       w[((o * s.c + c) * s.kh + ky) * s.kw + kx];
              }
          y[((n * s.co + o) * s.ho() + oy) * s.wo() + ox] = acc;
        }
  return y;
}

TEST(Ops, Conv2dMatchesDirectDefinition) {
  Rng rng(11);
  for (auto [c, h, w, co, k, stride, pad] : std::vector<std::array<int64_t, 7>>{
           {1, 28, 28, 32, 5, 1, 2}, {3, 11, 9, 4, 3, 2, 1}, {2, 5, 6, 3, 1, 1, 0}, {2, 7, 7, 2, 4, 3, 2}}) {
    const int64_t n = 3;
    Tensor x = random_tensor({n, c, h, w}, rng), wt = random_tensor({co, c, k, k}, rng), b = random_tensor({co}, rng);
    Tensor y = conv2d(x, wt, b, stride, pad);
    Conv2dShape s{n, c, h, w, co, k, k, stride, pad};
    ASSERT_EQ(y.shape(), (Shape{n, co, s.ho(), s.wo()}));
    const auto expect = naive_conv(s, x.to_vector(), wt.to_vector(), b.to_vector());
    const auto got = y.to_vector();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], expect[i], 1e-4 * (1 + std::abs(expect[i]))) << "element " << i << " c=" << c << " k=" << k;
  }
}

TEST(Ops, Im2colThenCol2imIsTheAdjoint) {
  // <im2col(x), c> == <x, col2im(c)> for random x, c: col2im is exactly the transpose.
  Rng rng(12);
  Conv2dShape s{1, 3, 9, 7, 1, 3, 3, 2, 1};
  auto x = random_tensor({s.c, s.h, s.w}, rng).to_vector();
  auto c = random_tensor({s.col_rows(), s.col_cols()}, rng).to_vector();
  std::vector<float> col(c.size()), back(x.size());
  cpu::im2col(s, x.data(), col.data());
  cpu::col2im(s, c.data(), back.data());
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < c.size(); ++i) lhs += static_cast<double>(col[i]) * c[i];
  for (size_t i = 0; i < x.size(); ++i) rhs += static_cast<double>(x[i]) * back[i];
  EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::abs(lhs)));
}

TEST(Ops, MaxPoolPicksWindowMaximum) {
  Tensor x = Tensor::from_vector({1, 1, 4, 4}, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0, 9, 0, 0});
  EXPECT_EQ(max_pool2d(x, 2, 2).to_vector(), (std::vector<float>{6, 8, 9, 0}));
  // Ties: the gradient goes to the first maximum only.
  Tensor t = Tensor::from_vector({1, 1, 2, 2}, std::vector<float>{3, 3, 3, 3});
  t.set_requires_grad(true);
  sum(max_pool2d(t, 2, 2)).backward();
  EXPECT_EQ(t.grad().to_vector(), (std::vector<float>{1, 0, 0, 0}));
}

// The 2x2 stride-2 backward writes every input position itself; against the definition on odd
// sizes (an uncovered last row and column) with many ties (values from a set of three).
TEST(Ops, MaxPool2x2BackwardMatchesTheDefinitionWithTiesAndOddSizes) {
  const int64_t n = 2, c = 3, h = 5, w = 7, ho = 2, wo = 3;
  Rng rng(21);
  std::vector<float> xv(static_cast<size_t>(n * c * h * w)), gv(static_cast<size_t>(n * c * ho * wo));
  for (auto& v : xv) v = static_cast<float>(rng.below(3)) - 1.0f;
  for (auto& v : gv) v = static_cast<float>(rng.uniform(0.5, 1.5));
  Tensor x = Tensor::from_vector({n, c, h, w}, xv);
  x.set_requires_grad(true);
  Tensor y = max_pool2d(x, 2, 2);
  sum(mul(y, Tensor::from_vector({n, c, ho, wo}, gv))).backward();
  std::vector<float> want(xv.size(), 0.0f);
  for (int64_t p = 0; p < n * c; ++p)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        int64_t best = -1;
        for (int64_t k = 0; k < 4; ++k) {
          const int64_t at = p * h * w + (2 * oy + k / 2) * w + 2 * ox + k % 2;
          if (best < 0 || xv[static_cast<size_t>(at)] > xv[static_cast<size_t>(best)]) best = at;
        }
        want[static_cast<size_t>(best)] = gv[static_cast<size_t>((p * ho + oy) * wo + ox)];
      }
  EXPECT_EQ(x.grad().to_vector(), want);
}

TEST(Ops, LinearMatchesMatrixProduct) {
  Tensor x = Tensor::from_vector({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  Tensor w = Tensor::from_vector({2, 3}, std::vector<float>{1, 0, -1, 2, 1, 0});
  Tensor b = Tensor::from_vector({2}, std::vector<float>{0.5f, -1});
  EXPECT_EQ(linear(x, w, b).to_vector(), (std::vector<float>{-1.5f, 3, -1.5f, 12}));
}

TEST(Ops, CrossEntropyIsStableForHugeLogits) {
  Tensor z = Tensor::from_vector({2, 3}, std::vector<float>{1000, 0, -1000, -1e4f, 1e4f, 0});
  auto l = cross_entropy(z, Labels({0, 0})).to_vector();
  EXPECT_NEAR(l[0], 0.0, 1e-6);
  EXPECT_NEAR(l[1], 2e4, 1.0);
  for (float v : log_softmax(z).to_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(Ops, CrossEntropyEqualsLogSoftmaxThenNll) {
  Rng rng(13);
  Tensor z = random_tensor({5, 7}, rng, -4, 4);
  Labels y({0, 6, 3, 3, 2});
  auto a = cross_entropy(z, y).to_vector(), b = nll_loss(log_softmax(z), y).to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
}

TEST(Ops, BadShapesAndLabelsAreErrors) {
  Tensor x = Tensor::zeros({2, 3});
  EXPECT_THROW(add(x, Tensor::zeros({3, 2})), Error);
  EXPECT_THROW(linear(x, Tensor::zeros({4, 2}), Tensor()), Error);
  EXPECT_THROW(cross_entropy(x, Labels({0, 3})), Error);     // label out of range
  EXPECT_THROW(cross_entropy(x, Labels({0})), Error);        // count mismatch
  EXPECT_THROW(conv2d(Tensor::zeros({1, 2, 4, 4}), Tensor::zeros({1, 3, 3, 3}), Tensor(), 1, 0), Error);
  EXPECT_THROW(x.reshape({4, 2}), Error);
}

TEST(Autograd, GradientsAccumulateUntilZeroed) {
  Tensor w = Tensor::from_vector({3}, std::vector<float>{1, 2, 3});
  w.set_requires_grad(true);
  sum(mul(w, w)).backward();
  sum(mul(w, w)).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{4, 8, 12}));
  w.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor w = Tensor::from_vector({2}, std::vector<float>{1, 2});
  w.set_requires_grad(true);
  Tensor y;
  {
    NoGradGuard guard;
    y = mul(w, w);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(sum(y).backward(), Error);
  EXPECT_TRUE(grad_mode_enabled());
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  // y = relu(x) + 3x: the two paths meet at the add; dy/dx = 1[x>0] + 3.
  Tensor x = Tensor::from_vector({2}, std::vector<float>{-1, 2});
  x.set_requires_grad(true);
  sum(add(relu(x), scale(x, 3))).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{3, 4}));
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = Tensor::from_vector({2}, std::vector<float>{1, 2});
  x.set_requires_grad(true);
  Tensor d = mul(x, x).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.to_vector(), (std::vector<float>{1, 4}));
}

}  // namespace
}  // namespace lethe
