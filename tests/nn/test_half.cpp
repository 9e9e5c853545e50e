#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "nn/half.h"

namespace lethe {
namespace {

bool is_nan_f16(uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }

TEST(Half, F16WidensExactlyAndNarrowsBackForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = f16_to_f32(bits);
    if (is_nan_f16(bits)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(is_nan_f16(f32_to_f16(f)));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), bits) << "pattern " << h;
  }
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

// Between two neighbouring F16 values a and b, the midpoint rounds to the one with the even
// mantissa, anything nearer to a rounds to a and anything nearer to b to b.
TEST(Half, F16RoundsToNearestEvenBetweenEveryPairOfNeighbours) {
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const auto a = static_cast<uint16_t>(h), b = static_cast<uint16_t>(h + 1);
    const float fa = f16_to_f32(a), fb = f16_to_f32(b);
    const float mid = 0.5f * (fa + fb);  // exact: F16 values are far from F32's precision limit
    const uint16_t even = (a & 1u) ? b : a;
    ASSERT_EQ(f32_to_f16(mid), even) << "between " << fa << " and " << fb;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, fa)), a);
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, fb)), b);
    ASSERT_EQ(f32_to_f16(-mid), static_cast<uint16_t>(even | 0x8000u));
  }
}

TEST(Half, F16OverflowUnderflowAndSpecials) {
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7BFF);  // below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);    // the tie goes to even: infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: tie to even zero
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to even 2
  EXPECT_EQ(f32_to_f16(-1e-30f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(is_nan_f16(f32_to_f16(std::numeric_limits<float>::quiet_NaN())));
  // The largest subnormal's upper neighbour (rounding up out of the subnormal range) is 2^-14.
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -14), 0.0f)), 0x0400);
}

TEST(Half, Bf16RoundsToNearestEvenAndKeepsSpecials) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = bf16_to_f32(bits);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), bits);
    if ((h & 0x7FFFu) >= 0x7F7Fu) continue;  // the next pattern is infinity or NaN
    const uint32_t lo = static_cast<uint32_t>(bits) << 16;
    const float mid = std::bit_cast<float>(lo | 0x8000u);  // halfway to the next pattern
    const uint16_t even = (bits & 1u) ? static_cast<uint16_t>(bits + 1) : bits;
    ASSERT_EQ(f32_to_bf16(mid), even);
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(lo | 0x7FFFu)), bits);
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(lo | 0x8001u)), static_cast<uint16_t>(bits + 1));
  }
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to infinity
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);  // subnormal tie to even
}

}  // namespace
}  // namespace lethe
