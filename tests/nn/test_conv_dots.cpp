// A convolution's inner products with a few queries taken through the layer's own convolution
// (nn/per_example_kernels.h: conv2d_dots_by_convolution) against the formed per-example gradients'
// (kernels/cpu/per_example.h), on the CPU: odd geometries, a bias or none, padded query rows, a
// scale, dots that already hold values, and chunks of examples. The GPU takes this path for a
// convolution's dots with up to kConvolvedQueries queries (test_per_example_cuda.cpp compares the
// whole engine there with the CPU's).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "nn/per_example_kernels.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe {
namespace {

std::vector<float> uniform(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

Conv2dShape shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t co, int64_t kh, int64_t kw, int64_t stride,
                  int64_t pad) {
  Conv2dShape s;
  s.n = n, s.c = c, s.h = h, s.w = w, s.co = co, s.kh = kh, s.kw = kw, s.stride = stride, s.pad = pad;
  return s;
}

struct Case {
  Conv2dShape s;
  bool bias;
  int64_t q;
  int64_t budget;  // floats of convolved queries at once (0: the default)
};

TEST(ConvDots, ByConvolutionMatchTheFormedGradients) {
  const std::vector<Case> cases = {
      {shape(5, 3, 11, 9, 7, 3, 3, 2, 1), true, 1, 0},
      {shape(5, 3, 11, 9, 7, 3, 3, 2, 1), false, 3, 0},
      {shape(4, 4, 13, 10, 6, 5, 5, 1, 2), true, 4, 0},
      {shape(3, 1, 7, 12, 2, 3, 2, 3, 0), false, 2, 0},
      // Chunks of 2 examples (2 queries × 2 × K floats), the last one ragged.
      {shape(7, 2, 8, 8, 3, 3, 3, 1, 1), true, 2, 2 * 2 * 3 * 64},
  };
  for (const Case& c : cases) {
    const Conv2dShape& s = c.s;
    SCOPED_TRACE(::testing::Message() << "n=" << s.n << " c=" << s.c << " " << s.h << "x" << s.w << " co=" << s.co
                                      << " k=" << s.kh << "x" << s.kw << " stride=" << s.stride << " pad=" << s.pad
                                      << (c.bias ? " bias" : "") << " q=" << c.q << " budget=" << c.budget);
    const int64_t params = s.co * s.col_rows() + (c.bias ? s.co : 0), ld = params + 3;
    const auto a = uniform(s.n * s.c * s.h * s.w, 1);
    const auto d = uniform(s.n * s.co * s.col_cols(), 2);
    const auto queries = uniform(c.q * ld, 3);
    PerExampleRequest r;
    r.queries = queries.data(), r.q = c.q, r.ld_queries = ld, r.scale = 0.5f;
    std::vector<double> want(static_cast<size_t>(s.n * c.q), 0.25), got = want;
    r.dots = want.data();
    cpu::conv2d_per_example(s, c.bias, a.data(), d.data(), r);
    r.dots = got.data();
    conv2d_dots_by_convolution(Device::CPU, s, c.bias, a.data(), d.data(), r, c.budget);
    // Both are float sums of float products added in double, in other orders: within a few
    // float roundings of the sum of the terms' magnitudes, bounded here by 1e-5 of the terms'
    // count times the largest (every input is at most 1 in magnitude).
    const double bound = 1e-5 * static_cast<double>(s.co * s.col_cols() * s.col_rows());
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], bound) << "dot " << k;
  }
}

TEST(ConvDots, RefusesRequestsForMoreThanInnerProducts) {
  const Conv2dShape s = shape(2, 1, 5, 5, 2, 3, 3, 1, 0);
  const auto a = uniform(50, 1), d = uniform(2 * 2 * 9, 2), v = uniform(18, 3);
  std::vector<double> dots(2, 0.0), norms(2, 0.0);
  PerExampleRequest r;
  r.queries = v.data(), r.q = 1, r.ld_queries = 18, r.dots = dots.data(), r.sq_norms = norms.data();
  EXPECT_THROW(conv2d_dots_by_convolution(Device::CPU, s, false, a.data(), d.data(), r), Error);
  // The GPU's choice: dots alone, a few queries.
  r.sq_norms = nullptr;
  EXPECT_FALSE(dots_by_convolution(Device::CPU, r));
  EXPECT_TRUE(dots_by_convolution(Device::CUDA, r));
  r.q = kConvolvedQueries + 1;
  EXPECT_FALSE(dots_by_convolution(Device::CUDA, r));
}

}  // namespace
}  // namespace lethe
