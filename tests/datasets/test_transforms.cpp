#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "idx_fixture.h"

namespace lethe::data {
namespace {

using fixture::expect_error_mentioning;

// n images of c x h x w whose every value encodes (example, position), so a copy from the wrong
// place is visible; label = example % 10.
ImageSet numbered_set(int64_t n, int64_t c = 1, int64_t h = 2, int64_t w = 3) {
  ImageSet set;
  set.n = n;
  set.channels = c;
  set.height = h;
  set.width = w;
  set.pixels.resize(static_cast<size_t>(n * c * h * w));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < set.image_size(); ++p)
      set.pixels[static_cast<size_t>(i * set.image_size() + p)] = static_cast<float>(i * 100 + p);
  for (int64_t i = 0; i < n; ++i) {
    set.labels.push_back(static_cast<int32_t>(i % 10));
    set.source_index.push_back(i);
  }
  return set;
}

TEST(SeededSubset, IsDeterministicDistinctSortedAndInRange) {
  const auto a = seeded_subset(60000, 3000, 7);
  const auto b = seeded_subset(60000, 3000, 7);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 3000u);
  EXPECT_TRUE(std::adjacent_find(a.begin(), a.end(), std::greater_equal<>()) == a.end())
      << "not strictly ascending, so not sorted or not distinct";
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 60000);
  EXPECT_NE(a, seeded_subset(60000, 3000, 8));
}

TEST(SeededSubset, WholeSetIsEveryIndex) {
  const auto all = seeded_subset(50, 50, 3);
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
}

TEST(SeededSubset, EveryIndexIsEquallyLikely) {
  // 20000 subsets of 3 from 10: each index is picked Binomial(20000, 0.3) times, sd ~ 65;
  // 5 sd leaves a false alarm chance far below one in a million, a bias of 0.02 still shows.
  constexpr int kTrials = 20000;
  std::vector<int> picks(10, 0);
  for (int seed = 0; seed < kTrials; ++seed)
    for (int64_t i : seeded_subset(10, 3, static_cast<uint64_t>(seed))) ++picks[static_cast<size_t>(i)];
  const double expected = kTrials * 0.3, sd = std::sqrt(kTrials * 0.3 * 0.7);
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(picks[static_cast<size_t>(i)], expected, 5 * sd) << i;
}

TEST(SeededSubset, RejectsImpossibleSizes) {
  expect_error_mentioning([] { seeded_subset(10, 11, 0); }, {"11", "10"});
  expect_error_mentioning([] { seeded_subset(10, 0, 0); }, {"positive"});
  expect_error_mentioning([] { seeded_subset(10, -1, 0); }, {"positive"});
}

TEST(HoldoutSplit, PartitionsEveryIndexInTheAskedShareTheSameForTheSameDraws) {
  Rng a(5), b(5);
  const HoldoutSplit s = holdout_split(50, 0.1, a), again = holdout_split(50, 0.1, b);
  EXPECT_EQ(s.held_out.size(), 5u);
  EXPECT_EQ(s.kept.size(), 45u);
  EXPECT_EQ(s.held_out, again.held_out);
  EXPECT_TRUE(std::is_sorted(s.held_out.begin(), s.held_out.end()));
  EXPECT_TRUE(std::is_sorted(s.kept.begin(), s.kept.end()));
  std::set<int64_t> all(s.kept.begin(), s.kept.end());
  all.insert(s.held_out.begin(), s.held_out.end());
  EXPECT_EQ(all.size(), 50u);  // disjoint, and every index in one part
  EXPECT_EQ(*all.rbegin(), 49);
  // At least one held out whenever a share is asked and two exist, never all; none otherwise.
  Rng c(1);
  EXPECT_EQ(holdout_split(3, 0.01, c).held_out.size(), 1u);
  EXPECT_EQ(holdout_split(2, 0.99, c).held_out.size(), 1u);
  EXPECT_TRUE(holdout_split(1, 0.5, c).held_out.empty());
  EXPECT_TRUE(holdout_split(40, 0.0, c).held_out.empty());
  EXPECT_EQ(holdout_split(40, 0.0, c).kept.size(), 40u);
}

TEST(Take, CopiesTheChosenExamplesAndKeepsTheirOrigin) {
  const ImageSet set = numbered_set(20);
  const std::vector<int64_t> idx = {4, 17, 2};
  const ImageSet sub = take(set, idx);
  ASSERT_EQ(sub.n, 3);
  EXPECT_EQ(sub.image_size(), set.image_size());
  for (size_t k = 0; k < idx.size(); ++k) {
    EXPECT_EQ(sub.labels[k], set.labels[static_cast<size_t>(idx[k])]);
    for (int64_t p = 0; p < set.image_size(); ++p)
      EXPECT_EQ(sub.image(static_cast<int64_t>(k))[p], set.image(idx[k])[p]);
  }
  EXPECT_EQ(sub.source_index, idx);
  // A subset of a subset still points into the original file.
  const std::vector<int64_t> again = {2, 0};
  EXPECT_EQ(take(sub, again).source_index, (std::vector<int64_t>{2, 4}));
}

TEST(Take, RejectsIndicesOutsideTheSet) {
  const ImageSet set = numbered_set(5);
  const std::vector<int64_t> past_end = {1, 5};
  const std::vector<int64_t> negative = {-1};
  expect_error_mentioning([&] { take(set, past_end); }, {"index 5"});
  expect_error_mentioning([&] { take(set, negative); }, {"index -1"});
}

TEST(PixelMean, IsPerChannel) {
  ImageSet set = numbered_set(4, 3, 2, 2);
  // Channel c holds the constant c + 0.25 * example, so its mean is c + 0.25 * 1.5.
  for (int64_t i = 0; i < set.n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 4; ++p) set.image(i)[c * 4 + p] = static_cast<float>(c + 0.25 * i);
  const auto mean = pixel_mean(set);
  ASSERT_EQ(mean.size(), 3u);
  for (int c = 0; c < 3; ++c) EXPECT_FLOAT_EQ(mean[static_cast<size_t>(c)], c + 0.375f);
}

TEST(PixelMean, AccumulatesWithoutFloatDrift) {
  // 4M values of 0.1f: a float running sum would be off by whole percent; a double one is not.
  ImageSet set = numbered_set(4096, 1, 32, 32);
  std::fill(set.pixels.begin(), set.pixels.end(), 0.1f);
  EXPECT_NEAR(pixel_mean(set)[0], 0.1f, 1e-7);
}

TEST(SubtractMean, CentresEveryChannel) {
  ImageSet set = numbered_set(6, 2, 3, 3);
  const auto mean = pixel_mean(set);
  const float before = set.pixels[10];
  subtract_mean(set, mean);
  EXPECT_FLOAT_EQ(set.pixels[10], before - mean[1]);  // value 10 of image 0 is in channel 1
  for (float m : pixel_mean(set)) EXPECT_NEAR(m, 0.0f, 1e-3f);
}

TEST(SubtractMean, RejectsAMeanOfTheWrongLength) {
  ImageSet set = numbered_set(2, 3);
  expect_error_mentioning([&] { subtract_mean(set, {0.5f}); }, {"1 mean values", "3 channels"});
  expect_error_mentioning([] { pixel_mean(ImageSet{}); }, {"empty"});
}

void expect_each_index_once(const std::vector<std::vector<int64_t>>& batches, int64_t n) {
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (const auto& batch : batches)
    for (int64_t i : batch) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, n);
      ++seen[static_cast<size_t>(i)];
    }
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << "index " << i;
}

TEST(ShuffledBatches, CoverEveryIndexExactlyOnce) {
  Rng rng(11);
  const auto batches = shuffled_batches(1000, 64, rng);
  ASSERT_EQ(batches.size(), 16u);
  for (size_t b = 0; b + 1 < batches.size(); ++b) EXPECT_EQ(batches[b].size(), 64u);
  EXPECT_EQ(batches.back().size(), 1000u - 15 * 64);
  expect_each_index_once(batches, 1000);
}

TEST(ShuffledBatches, AreSeededAndShuffled) {
  Rng a(5), b(5), c(6);
  const auto first = shuffled_batches(200, 32, a);
  EXPECT_EQ(first, shuffled_batches(200, 32, b));
  EXPECT_NE(first, shuffled_batches(200, 32, c));
  // A second epoch from the same generator is a different order.
  EXPECT_NE(first, shuffled_batches(200, 32, a));
  EXPECT_NE(first, sequential_batches(200, 32));
}

TEST(ShuffledBatches, DropLastDropsOnlyTheShortBatch) {
  Rng rng(1);
  const auto batches = shuffled_batches(100, 30, rng, /*drop_last=*/true);
  ASSERT_EQ(batches.size(), 3u);
  std::set<int64_t> seen;
  for (const auto& batch : batches) {
    EXPECT_EQ(batch.size(), 30u);
    seen.insert(batch.begin(), batch.end());
  }
  EXPECT_EQ(seen.size(), 90u);
  Rng again(1);
  EXPECT_EQ(shuffled_batches(90, 30, again, true).size(), 3u);  // an exact fit drops nothing
}

TEST(SequentialBatches, AreInOrder) {
  const auto batches = sequential_batches(10, 4);
  EXPECT_EQ(batches, (std::vector<std::vector<int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_TRUE(sequential_batches(0, 4).empty());
}

TEST(Batches, RejectNonPositiveBatchSize) {
  Rng rng(0);
  expect_error_mentioning([&] { shuffled_batches(10, 0, rng); }, {"batch size"});
  expect_error_mentioning([] { sequential_batches(10, -2); }, {"batch size"});
}

TEST(GatherBatch, CopiesImagesAndLabelsContiguously) {
  const ImageSet set = numbered_set(12, 2, 2, 2);
  const std::vector<int64_t> idx = {11, 0, 11};
  std::vector<float> pixels(idx.size() * 8, -1.0f);
  std::vector<int32_t> labels(idx.size(), -1);
  gather_batch(set, idx, pixels.data(), labels.data());
  EXPECT_EQ(labels, (std::vector<int32_t>{1, 0, 1}));
  for (size_t k = 0; k < idx.size(); ++k)
    for (int p = 0; p < 8; ++p)
      EXPECT_EQ(pixels[k * 8 + static_cast<size_t>(p)], static_cast<float>(idx[k] * 100 + p));
  gather_batch(set, idx, pixels.data(), nullptr);  // labels are optional
}

TEST(GatherBatch, RejectsABadIndexBeforeWriting) {
  const ImageSet set = numbered_set(3);
  const std::vector<int64_t> idx = {0, 3};
  std::vector<float> pixels(2 * 6, -1.0f);
  expect_error_mentioning([&] { gather_batch(set, idx, pixels.data(), nullptr); }, {"index 3"});
  for (float v : pixels) EXPECT_EQ(v, -1.0f);
}

}  // namespace
}  // namespace lethe::data
