// Training augmentation (random crop with padding, horizontal flip) and per-channel
// normalisation: every output value is traced back to its source, so a wrong offset, an
// unmirrored flip or a wrong fill cannot pass.
#include <cmath>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/transforms.h"
#include "util/error.h"

namespace lethe::data {
namespace {

constexpr int64_t kC = 3, kH = 32, kW = 32, kPlane = kH * kW;

// Images whose every value names its source: image i, channel c, row y, column x holds
// 1 + c*plane + y*W + x + 10000*i (never 0, so the zero fill is recognisable).
std::vector<float> coded_images(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n * kC * kPlane));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < kC * kPlane; ++k) v[static_cast<size_t>(i * kC * kPlane + k)] = 1.0f + k + 10000.0f * i;
  return v;
}

struct Draw {
  int64_t dy, dx;
  bool mirror;
};

// Recovers the crop offset and flip of image i from its values, checking along the way that
// every value is the source's value at (y + dy, mirrored-or-not x + dx) or, outside the image,
// the channel's fill.
Draw recover(const std::vector<float>& out, int64_t i, const std::vector<float>& fill) {
  const float* img = out.data() + i * kC * kPlane;
  // The centre pixel is inside the image for any offset up to 15.
  const int64_t code = static_cast<int64_t>(img[16 * kW + 16]) - 1 - 10000 * i;
  const int64_t sy = code / kW, sx = code % kW;
  Draw d{sy - 16, 0, false};
  // Columns decide the flip: unmirrored, x+1 reads sx+1; mirrored, sx-1.
  const int64_t next = static_cast<int64_t>(img[16 * kW + 17]) - 1 - 10000 * i;
  d.mirror = next % kW == sx - 1;
  d.dx = sx - (d.mirror ? kW - 1 - 16 : 16);
  for (int64_t c = 0; c < kC; ++c)
    for (int64_t y = 0; y < kH; ++y)
      for (int64_t x = 0; x < kW; ++x) {
        const int64_t ry = y + d.dy, rx = (d.mirror ? kW - 1 - x : x) + d.dx;
        const bool inside = ry >= 0 && ry < kH && rx >= 0 && rx < kW;
        const float want = inside ? 1.0f + c * kPlane + ry * kW + rx + 10000.0f * i
                                  : (fill.empty() ? 0.0f : fill[static_cast<size_t>(c)]);
        EXPECT_EQ(img[c * kPlane + y * kW + x], want) << "image " << i << " c " << c << " y " << y << " x " << x;
        if (img[c * kPlane + y * kW + x] != want) return d;
      }
  return d;
}

TEST(Augment, CropsWithinThePaddingAndMirrorsExactly) {
  const int64_t n = 400;
  std::vector<float> images = coded_images(n);
  Rng rng(11);
  augment_images(images.data(), n, kC, kH, kW, Augmentation{}, rng);
  std::set<int64_t> dys, dxs;
  int mirrored = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Draw d = recover(images, i, {});
    if (HasFailure()) return;
    EXPECT_LE(std::abs(d.dy), 4);
    EXPECT_LE(std::abs(d.dx), 4);
    dys.insert(d.dy);
    dxs.insert(d.dx);
    mirrored += d.mirror;
  }
  // Every offset in [-4, 4] occurs (each has probability 1/9 over 400 images), and the flip is a
  // fair coin: 200 +- 4 std (40).
  EXPECT_EQ(dys.size(), 9u);
  EXPECT_EQ(dxs.size(), 9u);
  EXPECT_NEAR(mirrored, 200, 40);
}

TEST(Augment, FillsThePaddingPerChannel) {
  const int64_t n = 50;
  std::vector<float> images = coded_images(n);
  Augmentation a;
  a.fill = {-1.5f, 0.25f, -7.0f};
  Rng rng(3);
  augment_images(images.data(), n, kC, kH, kW, a, rng);
  int64_t padded = 0;
  for (int64_t i = 0; i < n; ++i) {
    recover(images, i, a.fill);
    if (HasFailure()) return;
    for (int64_t k = 0; k < kC * kPlane; ++k) padded += images[static_cast<size_t>(i * kC * kPlane + k)] < 1.0f;
  }
  EXPECT_GT(padded, 0) << "no image was shifted: the fill was never exercised";
}

TEST(Augment, SameSeedSameBitsOtherSeedOtherImages) {
  const std::vector<float> source = coded_images(64);
  auto run = [&](uint64_t seed) {
    std::vector<float> v = source;
    Rng rng(seed);
    augment_images(v.data(), 64, kC, kH, kW, Augmentation{}, rng);
    return v;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
  EXPECT_NE(run(5), source);
}

TEST(Augment, FlipOffKeepsTheCropsAndNeverMirrors) {
  const int64_t n = 100;
  std::vector<float> with_flip = coded_images(n), without_flip = with_flip;
  Rng a(8), b(8);
  augment_images(with_flip.data(), n, kC, kH, kW, Augmentation{}, a);
  Augmentation no_flip;
  no_flip.flip = false;
  augment_images(without_flip.data(), n, kC, kH, kW, no_flip, b);
  for (int64_t i = 0; i < n; ++i) {
    const Draw f = recover(with_flip, i, {}), g = recover(without_flip, i, {});
    if (HasFailure()) return;
    EXPECT_FALSE(g.mirror);
    EXPECT_EQ(f.dy, g.dy);
    EXPECT_EQ(f.dx, g.dx);
  }
  EXPECT_EQ(a.next_u64(), b.next_u64()) << "three draws per image whatever the options";
}

TEST(Augment, PadZeroWithoutFlipIsTheIdentityAndPadZeroWithFlipOnlyMirrors) {
  const std::vector<float> source = coded_images(20);
  std::vector<float> v = source;
  Rng rng(1);
  Augmentation none;
  none.pad = 0;
  none.flip = false;
  augment_images(v.data(), 20, kC, kH, kW, none, rng);
  EXPECT_EQ(v, source);

  Augmentation flip_only;
  flip_only.pad = 0;
  augment_images(v.data(), 20, kC, kH, kW, flip_only, rng);
  int mirrored = 0;
  for (int64_t i = 0; i < 20; ++i) {
    const Draw d = recover(v, i, {});
    EXPECT_EQ(d.dy, 0);
    EXPECT_EQ(d.dx, 0);
    mirrored += d.mirror;
  }
  EXPECT_GT(mirrored, 0);
  EXPECT_LT(mirrored, 20);
}

TEST(Augment, RefusesBadOptions) {
  std::vector<float> v = coded_images(1);
  Rng rng(0);
  Augmentation bad;
  bad.pad = -1;
  EXPECT_THROW(augment_images(v.data(), 1, kC, kH, kW, bad, rng), Error);
  Augmentation wrong_fill;
  wrong_fill.fill = {0.0f};
  EXPECT_THROW(augment_images(v.data(), 1, kC, kH, kW, wrong_fill, rng), Error);
  EXPECT_NO_THROW(augment_images(v.data(), 0, kC, kH, kW, Augmentation{}, rng));
}

// ---- normalisation ----

ImageSet two_channel_set() {
  ImageSet s;
  s.n = 2;
  s.channels = 2;
  s.height = 1;
  s.width = 2;
  // channel 0: 0, 1, 0, 1 (mean 0.5, std 0.5); channel 1 constant 0.3.
  s.pixels = {0.0f, 1.0f, 0.3f, 0.3f, 0.0f, 1.0f, 0.3f, 0.3f};
  s.labels = {0, 1};
  return s;
}

TEST(Normalise, StdPerChannelAndConstantChannelsOnlyCentred) {
  ImageSet s = two_channel_set();
  const auto mean = pixel_mean(s);
  const auto sd = pixel_std(s, mean);
  EXPECT_FLOAT_EQ(mean[0], 0.5f);
  EXPECT_FLOAT_EQ(mean[1], 0.3f);
  EXPECT_FLOAT_EQ(sd[0], 0.5f);
  EXPECT_EQ(sd[1], 1.0f) << "a constant channel is divided by 1, not by ~0";
  normalise(s, mean, sd);
  EXPECT_EQ(s.pixels, (std::vector<float>{-1.0f, 1.0f, 0.0f, 0.0f, -1.0f, 1.0f, 0.0f, 0.0f}));
}

TEST(Normalise, RefusesMismatchedOrNonPositiveStatistics) {
  ImageSet s = two_channel_set();
  EXPECT_THROW(normalise(s, {0.0f}, {1.0f, 1.0f}), Error);
  EXPECT_THROW(normalise(s, {0.0f, 0.0f}, {1.0f, 0.0f}), Error);
  EXPECT_THROW(normalise(s, {0.0f, 0.0f}, {1.0f, NAN}), Error);
  EXPECT_THROW(pixel_std(ImageSet{}, {}), Error);
  EXPECT_THROW(pixel_std(s, {0.0f}), Error);
}

}  // namespace
}  // namespace lethe::data
