// The 2x2 max-pooling fast path (AVX-512 where the CPU has it, compiled rows otherwise) against
// the general window loop, bit for bit: values from a small set so windows tie, NaNs and
// infinities among them, and widths that leave masked remainders, odd columns and odd rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/features.h"
#include "kernels/cpu/pool.h"

namespace lethe::cpu {
namespace {

std::vector<float> tied_values(size_t count, std::mt19937& gen) {
  const float pool[] = {0.0f, -0.0f, 1.0f, 1.0f, 2.0f, -3.0f, 2.0f, std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<float> v(count);
  for (auto& x : v) x = pool[pick(gen)];
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(PoolPaths, TwoByTwoFastPathMatchesTheGeneralLoopBitForBit) {
  std::mt19937 gen(7);
  int checked = 0;
  for (int64_t h : {2, 3, 6, 15})
    for (int64_t w : {2, 3, 14, 28, 31, 32, 33, 65}) {
      Pool2dShape s;
      s.n = 2, s.c = 3, s.h = h, s.w = w, s.k = 2, s.stride = 2;
      const auto x = tied_values(static_cast<size_t>(s.n * s.c * h * w), gen);
      const size_t ny = static_cast<size_t>(s.n * s.c * s.ho() * s.wo());
      std::vector<float> fast(ny), general(ny);
      maxpool2d_forward(s, x.data(), fast.data());
      maxpool2d_forward_general(s, x.data(), general.data());
      ASSERT_TRUE(same_bits(fast, general)) << "forward, h " << h << " w " << w;

      std::vector<float> dy(ny);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (auto& g : dy) g = u(gen);
      std::vector<float> dx_fast(x.size(), 7.0f), dx_general(x.size(), -7.0f);  // stale values must not survive
      maxpool2d_backward(s, x.data(), general.data(), dy.data(), dx_fast.data());
      maxpool2d_backward_general(s, x.data(), general.data(), dy.data(), dx_general.data());
      ASSERT_TRUE(same_bits(dx_fast, dx_general)) << "backward, h " << h << " w " << w;
      ++checked;
    }
  EXPECT_EQ(checked, 32);
  if (!cpu_features().avx512f) GTEST_SKIP() << "compared the compiled rows; this CPU has no AVX-512 path to compare";
}

TEST(PoolPaths, EveryWindowTakesItsFirstMaximum) {
  // One plane of four windows with hand-made ties: the gradient goes to the first equal value in
  // row-major order, and a NaN maximum (which equals nothing) sends the gradient nowhere.
  Pool2dShape s;
  s.n = 1, s.c = 1, s.h = 2, s.w = 8, s.k = 2, s.stride = 2;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {5, 5, 1, 2, 3, 0, nan, 1,   // row 0
                                5, 5, 2, 2, 3, 3, 4, 9};    // row 1
  std::vector<float> y(4), dx(16);
  maxpool2d_forward(s, x.data(), y.data());
  EXPECT_EQ(y[0], 5.0f);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(y[2], 3.0f);
  EXPECT_TRUE(std::isnan(y[3]));  // NaN first: nothing is greater than it under `best < v`
  const std::vector<float> dy = {1, 2, 3, 4};
  maxpool2d_backward(s, x.data(), y.data(), dy.data(), dx.data());
  const std::vector<float> want = {1, 0, 0, 2, 3, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(dx, want);
}

}  // namespace
}  // namespace lethe::cpu
