#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "util/error.h"

namespace lethe::data {
namespace {

void check_indices(const ImageSet& set, std::span<const int64_t> idx, const char* caller) {
  for (size_t k = 0; k < idx.size(); ++k)
    if (idx[k] < 0 || idx[k] >= set.n)
      fail("{}: index {} (position {}) is outside the set of {} examples", caller, idx[k], k,
           set.n);
}

std::vector<std::vector<int64_t>> cut_into_batches(const std::vector<int64_t>& order,
                                                   int64_t batch, bool drop_last) {
  std::vector<std::vector<int64_t>> batches;
  const auto n = static_cast<int64_t>(order.size());
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t end = std::min(n, start + batch);
    if (drop_last && end - start < batch) break;
    batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  return batches;
}

void check_batching(int64_t n, int64_t batch, const char* caller) {
  if (n < 0) fail("{}: negative example count {}", caller, n);
  if (batch <= 0) fail("{}: batch size must be positive, got {}", caller, batch);
}

}  // namespace

std::vector<int64_t> seeded_subset(int64_t n_total, int64_t n, uint64_t seed) {
  if (n <= 0) fail("subset size must be positive, got {}", n);
  if (n > n_total) fail("subset of {} examples requested from a set of only {}", n, n_total);
  // A partial Fisher-Yates shuffle: the first n positions become a uniform random n-subset.
  std::vector<int64_t> pool(static_cast<size_t>(n_total));
  std::iota(pool.begin(), pool.end(), int64_t{0});
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const auto j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n_total - i)));
    std::swap(pool[static_cast<size_t>(i)], pool[static_cast<size_t>(j)]);
  }
  pool.resize(static_cast<size_t>(n));
  std::sort(pool.begin(), pool.end());
  return pool;
}

HoldoutSplit holdout_split(int64_t n, double fraction, Rng& rng) {
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);
  const int64_t n_held = n >= 2 && fraction > 0 ? std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1) : 0;
  HoldoutSplit s;
  s.held_out.assign(order.begin(), order.begin() + n_held);
  s.kept.assign(order.begin() + n_held, order.end());
  std::sort(s.held_out.begin(), s.held_out.end());
  std::sort(s.kept.begin(), s.kept.end());
  return s;
}

ImageSet take(const ImageSet& set, std::span<const int64_t> idx) {
  check_indices(set, idx, "take");
  ImageSet out;
  out.n = static_cast<int64_t>(idx.size());
  out.channels = set.channels;
  out.height = set.height;
  out.width = set.width;
  out.num_classes = set.num_classes;
  out.pixels.resize(static_cast<size_t>(out.n * out.image_size()));
  out.labels.resize(idx.size());
  gather_batch(set, idx, out.pixels.data(), out.labels.data());
  out.source_index.resize(idx.size());
  for (size_t k = 0; k < idx.size(); ++k)
    // A set built by hand may lack the mapping; its own positions are then the origin.
    out.source_index[k] =
        set.source_index.empty() ? idx[k] : set.source_index[static_cast<size_t>(idx[k])];
  return out;
}

std::vector<float> pixel_mean(const ImageSet& set) {
  if (set.n <= 0) fail("pixel mean of an empty image set");
  const int64_t plane = set.height * set.width;
  std::vector<double> sums(static_cast<size_t>(set.channels), 0.0);
  for (int64_t i = 0; i < set.n; ++i) {
    const float* image = set.image(i);
    for (int64_t c = 0; c < set.channels; ++c) {
      double s = 0.0;
      for (int64_t p = 0; p < plane; ++p) s += image[c * plane + p];
      sums[static_cast<size_t>(c)] += s;
    }
  }
  std::vector<float> mean(sums.size());
  const double count = static_cast<double>(set.n) * static_cast<double>(plane);
  for (size_t c = 0; c < sums.size(); ++c) mean[c] = static_cast<float>(sums[c] / count);
  return mean;
}

void subtract_mean(ImageSet& set, const std::vector<float>& mean) {
  if (static_cast<int64_t>(mean.size()) != set.channels)
    fail("subtract_mean: {} mean values for an image set with {} channels", mean.size(),
         set.channels);
  const int64_t plane = set.height * set.width;
  for (int64_t i = 0; i < set.n; ++i) {
    float* image = set.image(i);
    for (int64_t c = 0; c < set.channels; ++c)
      for (int64_t p = 0; p < plane; ++p) image[c * plane + p] -= mean[static_cast<size_t>(c)];
  }
}

std::vector<float> pixel_std(const ImageSet& set, const std::vector<float>& mean) {
  if (set.n <= 0) fail("pixel standard deviation of an empty image set");
  if (static_cast<int64_t>(mean.size()) != set.channels)
    fail("pixel_std: {} mean values for an image set with {} channels", mean.size(), set.channels);
  const int64_t plane = set.height * set.width;
  std::vector<double> sums(static_cast<size_t>(set.channels), 0.0);
  for (int64_t i = 0; i < set.n; ++i) {
    const float* image = set.image(i);
    for (int64_t c = 0; c < set.channels; ++c) {
      const double m = mean[static_cast<size_t>(c)];
      double s = 0.0;
      for (int64_t p = 0; p < plane; ++p) {
        const double d = image[c * plane + p] - m;
        s += d * d;
      }
      sums[static_cast<size_t>(c)] += s;
    }
  }
  std::vector<float> out(sums.size());
  const double count = static_cast<double>(set.n) * static_cast<double>(plane);
  for (size_t c = 0; c < sums.size(); ++c) {
    const double sd = std::sqrt(sums[c] / count);
    out[c] = sd < 1e-6 ? 1.0f : static_cast<float>(sd);
  }
  return out;
}

void normalise(ImageSet& set, const std::vector<float>& mean, const std::vector<float>& stddev) {
  if (static_cast<int64_t>(mean.size()) != set.channels || static_cast<int64_t>(stddev.size()) != set.channels)
    fail("normalise: {} mean and {} stddev values for an image set with {} channels", mean.size(), stddev.size(),
         set.channels);
  for (size_t c = 0; c < stddev.size(); ++c)
    if (!(stddev[c] > 0.0f && std::isfinite(stddev[c])))
      fail("normalise: stddev of channel {} is {}; it must be positive and finite", c, stddev[c]);
  const int64_t plane = set.height * set.width;
  for (int64_t i = 0; i < set.n; ++i) {
    float* image = set.image(i);
    for (int64_t c = 0; c < set.channels; ++c) {
      const float m = mean[static_cast<size_t>(c)], s = stddev[static_cast<size_t>(c)];
      for (int64_t p = 0; p < plane; ++p) image[c * plane + p] = (image[c * plane + p] - m) / s;
    }
  }
}

void augment_images(float* pixels, int64_t n, int64_t channels, int64_t height, int64_t width,
                    const Augmentation& augmentation, Rng& rng) {
  const int64_t pad = augmentation.pad;
  if (pad < 0) fail("augmentation: padding must be >= 0, got {}", pad);
  if (!augmentation.fill.empty() && static_cast<int64_t>(augmentation.fill.size()) != channels)
    fail("augmentation: {} fill values for images with {} channels", augmentation.fill.size(), channels);
  if (n <= 0 || channels <= 0 || height <= 0 || width <= 0) return;
  const int64_t plane = height * width;
  std::vector<float> source(static_cast<size_t>(channels * plane));
  for (int64_t i = 0; i < n; ++i) {
    // Always three draws per image, whatever the options, so turning the flip off does not move
    // the crops of later images.
    const int64_t dy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
    const int64_t dx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
    const bool mirror = rng.below(2) == 1 && augmentation.flip;
    if (dy == 0 && dx == 0 && !mirror) continue;
    float* image = pixels + i * channels * plane;
    std::memcpy(source.data(), image, source.size() * sizeof(float));
    for (int64_t c = 0; c < channels; ++c) {
      const float fill = augmentation.fill.empty() ? 0.0f : augmentation.fill[static_cast<size_t>(c)];
      const float* in = source.data() + c * plane;
      float* out = image + c * plane;
      for (int64_t y = 0; y < height; ++y) {
        const int64_t sy = y + dy;
        for (int64_t x = 0; x < width; ++x) {
          // Crop first, then mirror the crop (torchvision's RandomCrop, RandomHorizontalFlip).
          const int64_t sx = (mirror ? width - 1 - x : x) + dx;
          out[y * width + x] = (sy >= 0 && sy < height && sx >= 0 && sx < width) ? in[sy * width + sx] : fill;
        }
      }
    }
  }
}

std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch, Rng& rng,
                                                   bool drop_last) {
  check_batching(n, batch, "shuffled_batches");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);
  return cut_into_batches(order, batch, drop_last);
}

std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch) {
  check_batching(n, batch, "sequential_batches");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  return cut_into_batches(order, batch, false);
}

void gather_batch(const ImageSet& set, std::span<const int64_t> idx, float* pixels_out,
                  int32_t* labels_out) {
  check_indices(set, idx, "gather_batch");
  const int64_t size = set.image_size();
  for (size_t k = 0; k < idx.size(); ++k) {
    std::memcpy(pixels_out + static_cast<int64_t>(k) * size, set.image(idx[k]),
                static_cast<size_t>(size) * sizeof(float));
    if (labels_out) labels_out[k] = set.labels[static_cast<size_t>(idx[k])];
  }
}

}  // namespace lethe::data
