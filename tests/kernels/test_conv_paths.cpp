// The two CPU convolution paths (kernels/cpu/conv.h): oneDNN's JIT kernels, the default when
// lethe is built with oneDNN, against im2col + BLAS, on the shapes lethe's models use (MnistCnn's
// 5x5 padded convolutions, ResNet-18's 3x3 stride 1 and 2 and its 1x1 stride-2 projections),
// forward and backward. The per-example engine's tests then run again on the im2col path in a
// child process, so both paths stay tested whichever is the default.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/conv.h"
#include "kernels/rerun_self.h"

namespace lethe {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(gen);
  return v;
}

// |got - want| against float rounding of sums of `terms` products of values in [-1, 1]: both
// paths sum the same products in different orders, each sum off by ~sqrt(terms) * 2^-24 * its
// magnitude; 1e-5 * terms leaves room for the worst orders.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, int64_t terms, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const double tol = 1e-5 * static_cast<double>(terms);
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(got[i] - want[i]) <= tol)) {
      if (++bad <= 3) ADD_FAILURE() << what << "[" << i << "]: " << got[i] << " against " << want[i];
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " values differ";
}

struct Case {
  const char* name;
  Conv2dShape s;
};

class ConvPaths : public ::testing::TestWithParam<Case> {};

TEST_P(ConvPaths, DefaultPathMatchesIm2colForwardAndBackward) {
  const Conv2dShape s = GetParam().s;
  const size_t in = static_cast<size_t>(s.n * s.c * s.h * s.w), wn = static_cast<size_t>(s.co * s.col_rows());
  const size_t out = static_cast<size_t>(s.n * s.co * s.ho() * s.wo());
  const auto x = random_values(in, 1), w = random_values(wn, 2), b = random_values(static_cast<size_t>(s.co), 3),
             dy = random_values(out, 4);
  std::vector<float> y(out), y_ref(out);
  cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
  cpu::conv2d_forward_im2col(s, x.data(), w.data(), b.data(), y_ref.data());
  expect_close(y, y_ref, s.col_rows(), "forward");
  std::vector<float> dx(in), dw(wn), db(static_cast<size_t>(s.co)), dx_ref(in), dw_ref(wn), db_ref(db.size());
  cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  cpu::conv2d_backward_im2col(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
  expect_close(dx, dx_ref, s.co * s.kh * s.kw, "input gradient");
  expect_close(dw, dw_ref, s.n * s.ho() * s.wo(), "weight gradient");
  expect_close(db, db_ref, s.n * s.ho() * s.wo(), "bias gradient");
  // Outputs not asked for stay untouched, and a weight gradient alone is the same.
  std::vector<float> dw_only(wn, 7.0f);
  cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), nullptr, dw_only.data(), nullptr);
  expect_close(dw_only, dw_ref, s.n * s.ho() * s.wo(), "weight gradient alone");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvPaths,
    ::testing::Values(Case{"MnistConv1", {5, 1, 28, 28, 32, 5, 5, 1, 2}}, Case{"MnistConv2", {5, 32, 14, 14, 32, 5, 5, 1, 2}},
                      Case{"CifarConv1", {3, 3, 32, 32, 32, 5, 5, 1, 2}}, Case{"ResNet3x3", {3, 16, 8, 8, 16, 3, 3, 1, 1}},
                      Case{"ResNet3x3Stride2", {3, 16, 8, 8, 32, 3, 3, 2, 1}},
                      Case{"ResNetProjection", {3, 16, 8, 8, 32, 1, 1, 2, 0}}, Case{"OddSizes", {2, 3, 7, 9, 5, 3, 3, 1, 1}},
                      Case{"OneExample", {1, 8, 6, 6, 4, 3, 3, 1, 1}}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ConvPaths, PathIsNamed) {
  const std::string path = cpu::conv_path();
  EXPECT_TRUE(path == "onednn" || path == "im2col") << path;
  if (const char* v = std::getenv("LETHE_CONV"); v && std::string(v) == "im2col") {
    EXPECT_EQ(path, "im2col");
  }
}

// The convolution and per-example tests once more with LETHE_CONV=im2col, in a child process.
TEST(ConvPaths, Im2colPathPassesTheConvolutionAndPerExampleTests) {
  if (std::getenv("LETHE_CONV")) GTEST_SKIP() << "LETHE_CONV is set: this run already chose a path";
  const std::string filter = "Shapes/ConvGradCheck.*:Models/PerExample.*:PerExampleFisher.*:ResNetPerExample.*:Ops.*";
  std::string out;
  const int status = test::rerun_self("LETHE_CONV=im2col", filter, out);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("[  PASSED  ]"), std::string::npos) << out;
}

}  // namespace
}  // namespace lethe
