#pragma once
// Deterministic operations on an ImageSet: seeded subsets, mean subtraction, batching.
// All randomness comes from an explicit seed or Rng, so the same flags give the same D.
#include <cstdint>
#include <span>
#include <vector>

#include "datasets/mnist.h"
#include "util/rng.h"

namespace lethe::data {

// `n` distinct indices from [0, n_total), sorted ascending, the same for the same seed.
// Throws if n <= 0 or n > n_total.
std::vector<int64_t> seeded_subset(int64_t n_total, int64_t n, uint64_t seed);

// [0, n) split at random into a held-out part of round(fraction · n) indices (at least one when
// n >= 2 and fraction > 0; none otherwise) and the rest, both sorted ascending. The shuffle of
// all n indices comes from `rng`; the first ones drawn are held out.
struct HoldoutSplit {
  std::vector<int64_t> kept, held_out;
};
HoldoutSplit holdout_split(int64_t n, double fraction, Rng& rng);

// The examples at `idx`, in that order. source_index still points into the original file, so
// take(take(s, a), b) traces back to the file just as take(s, a) does. Throws on an index
// outside the set.
ImageSet take(const ImageSet& set, std::span<const int64_t> idx);

// Mean pixel value per channel (accumulated in double). Throws on an empty set.
std::vector<float> pixel_mean(const ImageSet& set);

// Subtracts mean[c] from every pixel of channel c; mean must have one value per channel.
void subtract_mean(ImageSet& set, const std::vector<float>& mean);

// Standard deviation per channel around `mean` (population form, accumulated in double). A
// channel whose spread is below 1e-6 (a constant channel) gets 1, so normalising by it only
// centres the channel instead of blowing it up. Throws on an empty set.
std::vector<float> pixel_std(const ImageSet& set, const std::vector<float>& mean);

// x <- (x - mean[c]) / stddev[c] for every pixel of channel c; one value of each per channel,
// every stddev positive and finite.
void normalise(ImageSet& set, const std::vector<float>& mean, const std::vector<float>& stddev);

// Training augmentation: a random crop of the image padded by `pad` on every side (the same as
// shifting it by offsets drawn uniformly from [-pad, pad] on each axis, with `fill` moving in at
// the edges), then a left-right mirror with probability 1/2.
struct Augmentation {
  int64_t pad = 4;
  bool flip = true;
  std::vector<float> fill;  // per channel; empty = 0
};

// Augments `n` contiguous [channels, height, width] images in place, drawing three numbers per
// image from `rng` (row offset, column offset, flip) in image order, so the same rng state gives
// the same bits. Throws on a negative pad or a fill whose size is not the channel count.
void augment_images(float* pixels, int64_t n, int64_t channels, int64_t height, int64_t width,
                    const Augmentation& augmentation, Rng& rng);

// A random permutation of [0, n) cut into batches of `batch`; the last batch is shorter unless
// drop_last drops it. Throws if batch <= 0 or n < 0.
std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch, Rng& rng,
                                                   bool drop_last = false);

// [0, n) in order, cut into batches of `batch` (the last may be shorter), for evaluation.
std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch);

// Copies the images at `idx` into pixels_out (idx.size() x C x H x W, contiguous) and their
// labels into labels_out (idx.size() values; may be null when labels are not needed).
// Throws on an index outside the set before writing anything.
void gather_batch(const ImageSet& set, std::span<const int64_t> idx, float* pixels_out,
                  int32_t* labels_out);

}  // namespace lethe::data
