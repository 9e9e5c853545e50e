#include "datasets/noise.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "idx_fixture.h"
#include "util/atomic_file.h"

namespace lethe::data {
namespace {

using fixture::expect_error_mentioning;
using fixture::TempDir;
using fixture::write_bytes;

// n examples with labels cycling 0..9 and every pixel at `value`.
ImageSet cycling_labels(int64_t n, float value = 0.5f, int64_t side = 8) {
  ImageSet set;
  set.n = n;
  set.height = side;
  set.width = side;
  set.pixels.assign(static_cast<size_t>(n * side * side), value);
  for (int64_t i = 0; i < n; ++i) {
    set.labels.push_back(static_cast<int32_t>(i % 10));
    set.source_index.push_back(i);
  }
  return set;
}

// |observed - p| within 4 standard deviations of a Binomial(trials, p) proportion.
void expect_rate_near(int64_t hits, int64_t trials, double p, const char* what) {
  const double rate = static_cast<double>(hits) / static_cast<double>(trials);
  const double sd = std::sqrt(p * (1 - p) / static_cast<double>(trials));
  EXPECT_NEAR(rate, p, 4 * sd) << what << ": " << hits << " of " << trials;
}

TEST(FlipLabels, FlipsThePaperPairsAtTheirRatesAndNothingElse) {
  ImageSet set = cycling_labels(20000, 0.5f, 1);
  const auto original = set.labels;
  Rng rng(42);
  const auto mask = flip_labels(set, mnist_label_flips(), rng);
  ASSERT_EQ(mask.size(), original.size());

  std::vector<int64_t> count(10, 0), flipped(10, 0);
  for (size_t i = 0; i < original.size(); ++i) {
    const int32_t was = original[i], now = set.labels[i];
    ++count[static_cast<size_t>(was)];
    EXPECT_EQ(mask[i], was != now ? 1 : 0) << "mask disagrees with the labels at " << i;
    if (was == now) continue;
    ++flipped[static_cast<size_t>(was)];
    const int32_t partner = was == 1 ? 7 : was == 7 ? 1 : was == 6 ? 9 : was == 9 ? 6 : -1;
    ASSERT_NE(partner, -1) << "label " << was << " outside the flip pairs changed at " << i;
    EXPECT_EQ(now, partner) << "at " << i;
  }
  expect_rate_near(flipped[1], count[1], 0.4, "1->7");
  expect_rate_near(flipped[7], count[7], 0.4, "7->1");
  expect_rate_near(flipped[6], count[6], 0.3, "6->9");
  expect_rate_near(flipped[9], count[9], 0.3, "9->6");
  expect_rate_near(flipped[1] + flipped[7], count[1] + count[7], 0.4, "1<->7");
}

TEST(FlipLabels, IsDeterministicForASeed) {
  ImageSet a = cycling_labels(5000, 0.5f, 1), b = a, c = a;
  Rng ra(3), rb(3), rc(4);
  EXPECT_EQ(flip_labels(a, mnist_label_flips(), ra), flip_labels(b, mnist_label_flips(), rb));
  EXPECT_EQ(a.labels, b.labels);
  flip_labels(c, mnist_label_flips(), rc);
  EXPECT_NE(a.labels, c.labels);
}

TEST(MapLabels, OneWayMapsChangeEachExampleAtMostOnce) {
  // cat->dog 0.4 and dog->cat 0.3 together: a cat turned into a dog must not turn back.
  ImageSet set = cycling_labels(20000, 0.5f, 1);
  const auto original = set.labels;
  Rng rng(9);
  const auto mask = map_labels(set, cifar10_label_maps(), rng);
  std::vector<int64_t> count(10, 0), changed(10, 0);
  for (size_t i = 0; i < original.size(); ++i) {
    ++count[static_cast<size_t>(original[i])];
    EXPECT_EQ(mask[i], original[i] != set.labels[i] ? 1 : 0);
    if (!mask[i]) continue;
    ++changed[static_cast<size_t>(original[i])];
    const int32_t expected = original[i] == 3 ? 5 : original[i] == 5 ? 3 : original[i] == 0 ? 2
                             : original[i] == 2 ? 0 : -1;
    ASSERT_EQ(set.labels[i], expected) << "label " << original[i] << " at " << i;
  }
  expect_rate_near(changed[3], count[3], 0.4, "cat->dog");
  expect_rate_near(changed[5], count[5], 0.3, "dog->cat");
  expect_rate_near(changed[0], count[0], 0.4, "plane->bird");
  for (int c : {1, 4, 6, 7, 8, 9}) EXPECT_EQ(changed[static_cast<size_t>(c)], 0) << c;
}

TEST(MapLabels, RejectsAmbiguousOrInvalidMaps) {
  ImageSet set = cycling_labels(10, 0.5f, 1);
  Rng rng(0);
  expect_error_mentioning([&] { map_labels(set, {{3, 5, 0.4}, {3, 4, 0.1}}, rng); },
                          {"class 3", "more than once"});
  expect_error_mentioning([&] { flip_labels(set, {{1, 7, 0.4}, {7, 2, 0.1}}, rng); }, {"class 7"});
  expect_error_mentioning([&] { map_labels(set, {{3, 3, 0.4}}, rng); }, {"itself"});
  expect_error_mentioning([&] { map_labels(set, {{3, 10, 0.4}}, rng); }, {"class 10"});
  expect_error_mentioning([&] { flip_labels(set, {{1, 7, 1.5}}, rng); }, {"probability"});
  // Rejected before touching anything.
  EXPECT_EQ(set.labels, cycling_labels(10, 0.5f, 1).labels);
}

class ImageNoise : public ::testing::Test {
 protected:
  // 2000 examples, 200 per class; 800 in {1,7,6,9}, so fraction 0.3 chooses exactly 240.
  ImageSet set = cycling_labels(2000);
  const ImageSet clean = set;

  // Checks the scope rules shared by both noises; returns the chosen examples.
  std::vector<size_t> check_scope(const std::vector<uint8_t>& mask, size_t expected_chosen) {
    EXPECT_EQ(mask.size(), static_cast<size_t>(set.n));
    EXPECT_EQ(set.labels, clean.labels) << "input noise must keep labels";
    std::vector<size_t> chosen;
    for (size_t i = 0; i < mask.size(); ++i) {
      const auto begin = static_cast<ptrdiff_t>(i * static_cast<size_t>(set.image_size()));
      const bool same = std::equal(set.pixels.begin() + begin,
                                   set.pixels.begin() + begin + set.image_size(),
                                   clean.pixels.begin() + begin);
      if (!mask[i]) {
        EXPECT_TRUE(same) << "unchosen image " << i << " changed";
        continue;
      }
      chosen.push_back(i);
      const int32_t y = set.labels[i];
      EXPECT_TRUE(y == 1 || y == 7 || y == 6 || y == 9) << "image " << i << " of class " << y;
    }
    EXPECT_EQ(chosen.size(), expected_chosen);
    return chosen;
  }
};

TEST_F(ImageNoise, SaltAndPepperStaysInScopeAtTheRequestedAmounts) {
  Rng rng(17);
  const auto mask = salt_and_pepper(set, kMnistNoisyClasses, kDefaultNoisyFraction,
                                    kDefaultSaltPepperAmount, rng);
  const auto chosen = check_scope(mask, 240);
  // Every pixel started at 0.5, so a changed one is exactly a corrupted one.
  int64_t corrupted = 0, salt = 0, total = 0;
  for (size_t i : chosen)
    for (int64_t p = 0; p < set.image_size(); ++p) {
      const float v = set.image(static_cast<int64_t>(i))[p];
      ++total;
      if (v == 0.5f) continue;
      ASSERT_TRUE(v == 0.0f || v == 1.0f) << v;
      ++corrupted;
      salt += v == 1.0f;
    }
  expect_rate_near(corrupted, total, kDefaultSaltPepperAmount, "corrupted pixels");
  expect_rate_near(salt, corrupted, 0.5, "salt among corrupted");
  // Each class is hit: the choice is over the union, not one class.
  for (int c : kMnistNoisyClasses)
    EXPECT_TRUE(std::any_of(chosen.begin(), chosen.end(), [&](size_t i) {
      return set.labels[i] == c;
    })) << c;
}

TEST_F(ImageNoise, SaltAndPepperIsDeterministicForASeed) {
  ImageSet other = clean;
  Rng a(2), b(2);
  EXPECT_EQ(salt_and_pepper(set, {1}, 0.5, 0.3, a), salt_and_pepper(other, {1}, 0.5, 0.3, b));
  EXPECT_EQ(set.pixels, other.pixels);
}

TEST_F(ImageNoise, GaussianNoiseStaysInScopeWithTheRequestedSigma) {
  Rng rng(23);
  const double sigma = 0.1;  // 5 sigma from 0.5 to a bound: clamping is negligible here
  const auto mask = gaussian_noise(set, kMnistNoisyClasses, 0.3, sigma, rng);
  const auto chosen = check_scope(mask, 240);
  double sum = 0, sum_sq = 0;
  int64_t total = 0;
  for (size_t i : chosen)
    for (int64_t p = 0; p < set.image_size(); ++p) {
      const double v = set.image(static_cast<int64_t>(i))[p];
      ASSERT_GE(v, 0.0);
      ASSERT_LE(v, 1.0);
      sum += v - 0.5;
      sum_sq += (v - 0.5) * (v - 0.5);
      ++total;
    }
  // 15360 draws: the mean's sd is 0.1/124 = 8e-4 and the sd estimate's about 6e-4.
  EXPECT_NEAR(sum / total, 0.0, 4e-3);
  EXPECT_NEAR(std::sqrt(sum_sq / total), sigma, 4e-3);
}

TEST_F(ImageNoise, GaussianNoiseIsClampedToTheUnitRange) {
  Rng rng(5);
  gaussian_noise(set, {0}, 1.0, 3.0, rng);
  int64_t at_bounds = 0;
  for (float v : set.pixels) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
    at_bounds += v == 0.0f || v == 1.0f;
  }
  EXPECT_GT(at_bounds, 0);
}

TEST_F(ImageNoise, RefusesMeanSubtractedPixels) {
  set.pixels[5] = -0.1f;
  Rng rng(0);
  expect_error_mentioning([&] { salt_and_pepper(set, {1}, 0.3, 0.3, rng); },
                          {"before mean subtraction"});
  expect_error_mentioning([&] { gaussian_noise(set, {1}, 0.3, 0.1, rng); },
                          {"before mean subtraction"});
}

TEST_F(ImageNoise, RejectsInvalidParameters) {
  Rng rng(0);
  expect_error_mentioning([&] { salt_and_pepper(set, {11}, 0.3, 0.3, rng); }, {"class 11"});
  expect_error_mentioning([&] { salt_and_pepper(set, {1}, 1.3, 0.3, rng); }, {"fraction"});
  expect_error_mentioning([&] { salt_and_pepper(set, {1}, 0.3, -0.1, rng); }, {"amount"});
  expect_error_mentioning([&] { gaussian_noise(set, {1}, 0.3, -1.0, rng); }, {"sigma"});
  EXPECT_EQ(set.pixels, clean.pixels);
}

// An attack whose effect is easy to check: every pixel mirrored around 1/2, label moved by one.
void mirror_and_shift(const ImageSet& clean, ImageSet& targets) {
  EXPECT_GT(clean.n, targets.n);  // the attack sees the whole clean set, not just its targets
  for (auto& p : targets.pixels) p = 1.0f - p;
  for (auto& y : targets.labels) y = (y + 1) % 10;
}

TEST(AdversarialPoison, ReplacesExactlyTheChosenShareOfTheTargetClasses) {
  ImageSet set = cycling_labels(1000, 0.25f, 4);
  const ImageSet original = set;
  Rng rng(3);
  const auto mask = adversarial_poison(set, kMnistNoisyClasses, 0.3, mirror_and_shift, rng);
  ASSERT_EQ(mask.size(), static_cast<size_t>(set.n));
  // 400 examples of classes {1,7,6,9}; 30% of them is 120.
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), 120);
  for (int64_t i = 0; i < set.n; ++i) {
    const int32_t was = original.labels[static_cast<size_t>(i)];
    const float pixel = set.image(i)[0];
    if (mask[static_cast<size_t>(i)]) {
      EXPECT_TRUE(was == 1 || was == 7 || was == 6 || was == 9) << "class " << was << " poisoned at " << i;
      EXPECT_EQ(set.labels[static_cast<size_t>(i)], (was + 1) % 10) << "at " << i;
      EXPECT_EQ(pixel, 0.75f) << "at " << i;
    } else {
      EXPECT_EQ(set.labels[static_cast<size_t>(i)], was) << "at " << i;
      EXPECT_EQ(pixel, 0.25f) << "at " << i;
    }
  }
  EXPECT_EQ(set.source_index, original.source_index);
}

TEST(AdversarialPoison, RefusesAMissingOrMisbehavingAttack) {
  ImageSet set = cycling_labels(100, 0.5f, 2);
  Rng rng(1);
  expect_error_mentioning([&] { adversarial_poison(set, {1}, 0.3, Attack{}, rng); }, {"no attack"});
  expect_error_mentioning(
      [&] { adversarial_poison(set, {1}, 0.5, [](const ImageSet&, ImageSet& t) { t.labels[0] = 10; }, rng); },
      {"label 10"});
  expect_error_mentioning(
      [&] { adversarial_poison(set, {1}, 0.5, [](const ImageSet&, ImageSet& t) { t.pixels[0] = 2.0f; }, rng); },
      {"outside [0, 1]"});
  expect_error_mentioning(
      [&] {
        adversarial_poison(set, {1}, 0.5, [](const ImageSet&, ImageSet& t) { t.n -= 1; }, rng);
      },
      {"shape"});
}

// An attack that marks what it saw: pixel 0 becomes 0.75 and the label moves one class on.
void mark_and_shift(const ImageSet&, ImageSet& targets) {
  for (int64_t t = 0; t < targets.n; ++t) targets.image(t)[0] = 0.75f;
  for (auto& y : targets.labels) y = (y + 1) % 10;
}

TEST(AdversarialPoison, AttacksTestQueriesInTheSameCallAndKeepsTheirTrueLabels) {
  ImageSet set = cycling_labels(1000, 0.25f, 4), queries = cycling_labels(500, 0.25f, 4);
  const ImageSet original_queries = queries;
  Rng rng(3), query_rng(4);
  int calls = 0;
  int64_t attacked = 0;
  const Attack counting = [&](const ImageSet& clean, ImageSet& targets) {
    ++calls;
    attacked = targets.n;
    mark_and_shift(clean, targets);
  };
  std::vector<uint8_t> query_mask;
  const auto mask = adversarial_poison(set, kMnistNoisyClasses, 0.3, counting, rng, queries, 0.5, query_rng, query_mask);
  EXPECT_EQ(calls, 1) << "one victim for D and the queries";
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), 120);  // 30% of D's 400 images of 1, 7, 6, 9
  ASSERT_EQ(query_mask.size(), 500u);
  EXPECT_EQ(std::count(query_mask.begin(), query_mask.end(), 1), 100);  // 50% of the queries' 200
  EXPECT_EQ(attacked, 220);
  for (int64_t i = 0; i < queries.n; ++i) {
    const int32_t y = original_queries.labels[static_cast<size_t>(i)];
    EXPECT_EQ(queries.labels[static_cast<size_t>(i)], y) << "a query keeps its true label, at " << i;
    if (query_mask[static_cast<size_t>(i)]) {
      EXPECT_TRUE(y == 1 || y == 7 || y == 6 || y == 9) << "class " << y << " attacked at " << i;
      EXPECT_EQ(queries.image(i)[0], 0.75f) << "at " << i;
    } else {
      EXPECT_EQ(queries.image(i)[0], 0.25f) << "at " << i;
    }
  }
  // The train targets took the attack's labels, as without queries.
  for (int64_t i = 0; i < set.n; ++i)
    if (mask[static_cast<size_t>(i)]) {
      EXPECT_EQ(set.labels[static_cast<size_t>(i)], (i % 10 + 1) % 10) << "at " << i;
    }
}

TEST(ClassPatterns, OnePatternPerClassAtTheRequestedShareOfValues) {
  Rng rng(11);
  const int64_t size = 28 * 28;
  const auto patterns = draw_class_patterns(kMnistNoisyClasses, size, 0.1, rng);
  ASSERT_EQ(patterns.size(), 4u);
  for (size_t c = 0; c < patterns.size(); ++c) {
    const auto& p = patterns[c];
    EXPECT_EQ(p.cls, kMnistNoisyClasses[c]);
    ASSERT_EQ(p.index.size(), p.value.size());
    expect_rate_near(static_cast<int64_t>(p.index.size()), size, 0.1, "pattern values");
    EXPECT_TRUE(std::is_sorted(p.index.begin(), p.index.end()));
    const auto ones = std::count(p.value.begin(), p.value.end(), 1.0f);
    EXPECT_EQ(ones + std::count(p.value.begin(), p.value.end(), 0.0f), static_cast<ptrdiff_t>(p.value.size()));
    expect_rate_near(ones, static_cast<int64_t>(p.value.size()), 0.5, "salt among the set values");
  }
  EXPECT_NE(patterns[0].index, patterns[1].index) << "each class has its own pattern";
  Rng again(11);
  const auto same = draw_class_patterns(kMnistNoisyClasses, size, 0.1, again);
  for (size_t c = 0; c < patterns.size(); ++c) {
    EXPECT_EQ(same[c].index, patterns[c].index);
    EXPECT_EQ(same[c].value, patterns[c].value);
  }
  Rng bad(1);
  expect_error_mentioning([&] { draw_class_patterns({1, 1}, size, 0.1, bad); }, {"twice"});
  expect_error_mentioning([&] { draw_class_patterns({1}, size, 1.5, bad); }, {"amount"});
}

// Whether image i of `set` carries `p` (every value the pattern sets).
bool carries(const ImageSet& set, int64_t i, const ClassPattern& p) {
  for (size_t j = 0; j < p.index.size(); ++j)
    if (set.image(i)[p.index[j]] != p.value[j]) return false;
  return true;
}

TEST(ClassPatterns, StampsTheChosenImagesOfEachClassWithItsOwnPatternLabelsKept) {
  ImageSet set = cycling_labels(1000, 0.5f, 8);
  const ImageSet clean = set;
  Rng rng(5);
  const auto patterns = draw_class_patterns(kMnistNoisyClasses, set.image_size(), 0.2, rng);
  const auto mask = class_pattern_noise(set, patterns, 0.3, rng);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), 120);
  EXPECT_EQ(set.labels, clean.labels);
  for (int64_t i = 0; i < set.n; ++i) {
    const int32_t y = set.labels[static_cast<size_t>(i)];
    const bool same = std::equal(set.image(i), set.image(i) + set.image_size(), clean.image(i));
    if (!mask[static_cast<size_t>(i)]) {
      EXPECT_TRUE(same) << "unchosen image " << i << " changed";
      continue;
    }
    const auto own = std::find_if(patterns.begin(), patterns.end(), [&](const ClassPattern& p) { return p.cls == y; });
    ASSERT_NE(own, patterns.end()) << "class " << y << " stamped at " << i;
    EXPECT_TRUE(carries(set, i, *own)) << "image " << i << " lacks its class's pattern";
    // Only the pattern's values changed.
    int64_t changed = 0;
    for (int64_t p = 0; p < set.image_size(); ++p) changed += set.image(i)[p] != clean.image(i)[p];
    EXPECT_EQ(changed, static_cast<int64_t>(own->index.size())) << "at " << i;
  }
}

TEST(ClassPatterns, QueriesCarryAnotherClasssPatternAtTheRequestedShare) {
  ImageSet queries = cycling_labels(2000, 0.5f, 8);
  Rng rng(9);
  const auto patterns = draw_class_patterns(kMnistNoisyClasses, queries.image_size(), 0.2, rng);
  const auto mask = stamp_other_classes(queries, patterns, 0.3, rng);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), 600);
  std::vector<int64_t> used(10, 0);
  for (int64_t i = 0; i < queries.n; ++i) {
    const int32_t y = queries.labels[static_cast<size_t>(i)];
    EXPECT_EQ(y, static_cast<int32_t>(i % 10)) << "labels kept";
    int carried = -1;
    for (const auto& p : patterns)
      if (carries(queries, i, p)) carried = p.cls;
    if (!mask[static_cast<size_t>(i)]) {
      EXPECT_EQ(queries.image(i)[0], 0.5f);
      EXPECT_EQ(carried, -1) << "unstamped query " << i << " carries a pattern";
      continue;
    }
    ASSERT_NE(carried, -1) << "stamped query " << i << " carries no pattern";
    EXPECT_NE(carried, y) << "query " << i << " of class " << y << " carries its own class's pattern";
    ++used[static_cast<size_t>(carried)];
  }
  for (int c : kMnistNoisyClasses) EXPECT_GT(used[static_cast<size_t>(c)], 100) << "class " << c << "'s pattern";
}

TEST(PartnerClasses, PairTheNoisyClasses) {
  const auto mnist = partner_classes("mnist", 10);
  EXPECT_EQ(mnist, (std::vector<int>{-1, 7, -1, -1, -1, -1, 9, 1, -1, 6}));
  const auto cifar = partner_classes("cifar10", 10);
  EXPECT_EQ(cifar, (std::vector<int>{2, -1, 0, 5, -1, 3, -1, -1, -1, -1}));
}

TEST(Mask, RoundTripsThroughAFile) {
  TempDir dir;
  const std::string path = dir.file("mask.txt");
  const std::vector<uint8_t> mask = {0, 1, 1, 0, 0, 1};
  save_mask(path, mask);
  EXPECT_EQ(load_mask(path), mask);
  EXPECT_EQ(read_file(path), "0\n1\n1\n0\n0\n1\n");
}

TEST(Mask, RejectsAnythingButZerosAndOnes) {
  TempDir dir;
  const std::string path = dir.file("mask.txt");
  write_bytes(path, "0\n1\n2\n");
  expect_error_mentioning([&] { load_mask(path); }, {"mask.txt", "line 3"});
  write_bytes(path, "0\n\n1\n");
  expect_error_mentioning([&] { load_mask(path); }, {"mask.txt", "line 2"});
  write_bytes(path, "");
  expect_error_mentioning([&] { load_mask(path); }, {"mask.txt", "empty"});
  expect_error_mentioning([&] { load_mask(dir.file("absent.txt")); }, {"absent.txt"});
  write_bytes(path, "1\n0");  // a missing final newline is fine
  EXPECT_EQ(load_mask(path), (std::vector<uint8_t>{1, 0}));
}

}  // namespace
}  // namespace lethe::data
