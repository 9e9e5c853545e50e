// The GPU's two other ways to a convolution's per-example quantities (nn/per_example_kernels.h),
// run on the CPU against the tiled per-example kernel's twin (kernels/cpu/per_example.h):
//   - inner products with a few queries through the layer's own convolution
//     (conv2d_dots_by_convolution);
//   - gradients, sums of squares, squared norms and inner products from gradients formed as
//     batched GEMMs over a batch-wide unfold (conv2d_per_example_by_gemm).
// Odd geometries, a bias or none, padded query and gradient rows, a scale, sums that already hold
// values, and chunks of examples. The GPU takes these paths (test_per_example_cuda.cpp compares
// the whole engine there with the CPU's).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/backend_ops/ops.h"
#include "kernels/device.h"
#include "nn/per_example_kernels.h"
#include "nn/tensor.h"
#include "util/error.h"

#ifdef LETHE_WITH_CUDA
#include "kernels/cuda/kernels.h"
#endif

namespace lethe {
namespace {

using backend_ops::uniform;

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

std::string describe(const Case& c) {
  return backend_ops::describe(c.s) + (c.bias ? " bias" : "") + " q=" + std::to_string(c.q) +
         " budget=" + std::to_string(c.budget);
}

// A case's inputs from three seeds from `seed` on; query and gradient rows padded past the
// layer's parameters.
struct Inputs {
  int64_t params, ld;
  std::vector<float> a, d, queries;
  Inputs(const Case& c, uint64_t seed)
      : params(c.s.co * c.s.col_rows() + (c.bias ? c.s.co : 0)),
        ld(params + 3),
        a(uniform(c.s.n * c.s.c * c.s.h * c.s.w, seed)),
        d(uniform(c.s.n * c.s.co * c.s.col_cols(), seed + 1)),
        queries(uniform(c.q * ld, seed + 2)) {}
};

TEST(ConvDots, ByConvolutionMatchTheFormedGradients) {
  const std::vector<Case> cases = {
      {shape(5, 3, 11, 9, 7, 3, 3, 2, 1), true, 1, 0},
      {shape(5, 3, 11, 9, 7, 3, 3, 2, 1), false, 3, 0},
      {shape(4, 4, 13, 10, 6, 5, 5, 1, 2), true, 4, 0},
      {shape(3, 1, 7, 12, 2, 3, 2, 3, 0), false, 2, 0},
      // Chunks of 2 examples (2 queries × 2 × K floats), the last one ragged.
      {shape(7, 2, 8, 8, 3, 3, 3, 1, 1), true, 2, 2 * 2 * 3 * 64},
      // Examples of 49 floats: the chunks after the first start between 16-byte boundaries.
      {shape(7, 1, 7, 7, 3, 3, 3, 1, 1), false, 2, 2 * 2 * 3 * 49},
  };
  for (const Case& c : cases) {
    const Conv2dShape& s = c.s;
    SCOPED_TRACE(describe(c));
    const Inputs in(c, 1);
    const int64_t ld = in.ld;
    const auto &a = in.a, &d = in.d, &queries = in.queries;
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

// Every request the GEMM path serves, against the tiled kernel's twin.
TEST(ConvByGemm, GradientsAndTheirSumsMatchTheTiledKernel) {
  const std::vector<Case> cases = {
      {shape(5, 3, 11, 9, 7, 3, 3, 2, 1), true, 3, 0},
      {shape(4, 4, 13, 10, 6, 5, 5, 1, 2), false, 6, 0},
      {shape(3, 1, 7, 12, 2, 3, 2, 3, 0), true, 1, 0},
      // Chunks of 2 examples (the patches' 27 × 64 floats each), the last one ragged.
      {shape(7, 3, 8, 8, 4, 3, 3, 1, 1), true, 2, 2 * 27 * 64},
  };
  for (const Case& c : cases) {
    const Conv2dShape& s = c.s;
    SCOPED_TRACE(describe(c));
    const Inputs in(c, 11);
    const int64_t params = in.params, ld = in.ld;
    const auto &a = in.a, &d = in.d, &queries = in.queries;
    const double bound = 1e-5 * static_cast<double>(s.col_cols() * (s.co * s.col_rows() + 1));

    // Gradients alone, into rows `ld` apart whose padding must stay as it was.
    std::vector<float> want_g(static_cast<size_t>(s.n * ld), 7.0f), got_g = want_g;
    PerExampleRequest g;
    g.grads = want_g.data(), g.ld_grads = ld, g.scale = 0.5f;
    cpu::conv2d_per_example(s, c.bias, a.data(), d.data(), g);
    g.grads = got_g.data();
    conv2d_per_example_by_gemm(Device::CPU, s, c.bias, a.data(), d.data(), g, c.budget);
    for (size_t k = 0; k < want_g.size(); ++k) EXPECT_NEAR(got_g[k], want_g[k], 1e-5) << "gradient entry " << k;

    // Everything else at once, added to values already there.
    std::vector<double> want_dots(static_cast<size_t>(s.n * c.q), 0.25), want_norms(static_cast<size_t>(s.n), 0.5),
        want_sums(static_cast<size_t>(params), 1.0);
    auto got_dots = want_dots, got_norms = want_norms, got_sums = want_sums;
    PerExampleRequest r;
    r.queries = queries.data(), r.q = c.q, r.ld_queries = ld, r.scale = 0.5f;
    r.dots = want_dots.data(), r.sq_norms = want_norms.data(), r.sq_sum = want_sums.data();
    cpu::conv2d_per_example(s, c.bias, a.data(), d.data(), r);
    r.dots = got_dots.data(), r.sq_norms = got_norms.data(), r.sq_sum = got_sums.data();
    conv2d_per_example_by_gemm(Device::CPU, s, c.bias, a.data(), d.data(), r, c.budget);
    for (size_t k = 0; k < want_dots.size(); ++k) EXPECT_NEAR(got_dots[k], want_dots[k], bound) << "dot " << k;
    for (size_t k = 0; k < want_norms.size(); ++k)
      EXPECT_NEAR(got_norms[k], want_norms[k], 1e-5 * std::abs(want_norms[k])) << "squared norm " << k;
    for (size_t k = 0; k < want_sums.size(); ++k)
      EXPECT_NEAR(got_sums[k], want_sums[k], 1e-5 * std::abs(want_sums[k])) << "sum of squares " << k;
  }
}

TEST(ConvByGemm, ServesGradientsAloneOrSumsWithoutThem) {
  const Conv2dShape s = shape(2, 1, 5, 5, 2, 3, 3, 1, 0);
  const auto a = uniform(50, 1), d = uniform(2 * 2 * 9, 2);
  std::vector<float> grads(2 * 18);
  std::vector<double> norms(2, 0.0);
  PerExampleRequest r;
  r.grads = grads.data(), r.ld_grads = 18, r.sq_norms = norms.data();
  EXPECT_FALSE(per_example_by_gemm(Device::CUDA, r));
  EXPECT_THROW(conv2d_per_example_by_gemm(Device::CPU, s, false, a.data(), d.data(), r), Error);
  r.sq_norms = nullptr;
  EXPECT_TRUE(per_example_by_gemm(Device::CUDA, r));
  EXPECT_FALSE(per_example_by_gemm(Device::CPU, r));
  r.grads = nullptr, r.sq_norms = norms.data();
  EXPECT_TRUE(per_example_by_gemm(Device::CUDA, r));
}

// On the GPU the batched GEMMs are cuBLAS's, in TF32 under --tf32: each operand rounded to a
// 10-bit mantissa (a relative error of at most 2^-10 even truncated), so each product by at most
// about 2^-9, and an entry G[o, r] = Σ_t d[o, t] col[r, t] by at most 2^-9 of M[o, r] =
// Σ_t |d[o, t]| |col[r, t]|, the same sums over |d| and |a|. FP32's own rounding of a sum of
// P = 256 terms is at most P · 2^-24 of M on either side. The test allows twice each bound: 2^-8
// of M for TF32's rounding, and 4 P · 2^-24 for the two sums'.
TEST(ConvByGemmCuda, GradientsWithinTheirRoundingOfTheCpuInFp32AndTf32) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
#ifdef LETHE_WITH_CUDA
  const Conv2dShape s = shape(8, 64, 16, 16, 64, 3, 3, 1, 1);
  const int64_t params = s.co * s.col_rows() + s.co, in = s.n * s.c * s.h * s.w, out = s.n * s.co * s.col_cols();
  const auto a = uniform(in, 21), d = uniform(out, 22);
  std::vector<float> abs_a(a), abs_d(d);
  for (float& x : abs_a) x = std::abs(x);
  for (float& x : abs_d) x = std::abs(x);
  std::vector<float> want(static_cast<size_t>(s.n * params)), mag(want.size());
  PerExampleRequest g;
  g.grads = want.data(), g.ld_grads = params;
  cpu::conv2d_per_example(s, true, a.data(), d.data(), g);
  g.grads = mag.data();
  cpu::conv2d_per_example(s, true, abs_a.data(), abs_d.data(), g);

  const Tensor ad = Tensor::from_vector({in}, a, Device::CUDA), dd = Tensor::from_vector({out}, d, Device::CUDA);
  const bool tf32_before = cuda::allow_tf32();
  for (const bool tf32 : {false, true}) {
    SCOPED_TRACE(tf32 ? "TF32" : "FP32");
    cuda::set_allow_tf32(tf32);
    Tensor grads = Tensor::empty({s.n * params}, Device::CUDA);
    g.grads = grads.data();
    conv2d_per_example_by_gemm(Device::CUDA, s, true, ad.data(), dd.data(), g);
    const auto got = grads.to_vector();
    const double fp32 = 4.0 * static_cast<double>(s.col_cols()) / (1 << 24), share = tf32 ? 1.0 / 256 + fp32 : fp32;
    int64_t outside = 0;
    for (size_t k = 0; k < want.size(); ++k)
      if (!(std::abs(got[k] - want[k]) <= share * mag[k] + 1e-7)) ++outside;
    EXPECT_EQ(outside, 0) << "entries farther from the CPU's than " << share << " of their terms' magnitudes";
  }
  cuda::set_allow_tf32(tf32_before);
#endif
}

}  // namespace
}  // namespace lethe
