#pragma once
// Simulated training-set corruption (method.md, "Noise"), each kind returning a ground-truth
// mask (one byte per example, 1 = corrupted) against which cause identification is scored.
// Every function touches only the examples in its scope: labels outside the listed classes, and
// images not chosen, keep their exact bits. Apply noise to pixels still in [0,1], i.e. before
// mean subtraction; the image noises check this and refuse otherwise.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "util/rng.h"

namespace lethe::data {

// ---- annotation noise ----

// A symmetric pair: labels a become b, and labels b become a, each with probability p.
struct LabelFlip {
  int a, b;
  double p;
};

// One direction only: labels `from` become `to` with probability p.
struct LabelMap {
  int from, to;
  double p;
};

// The paper's MNIST annotation noise: 1<->7 with p = 0.4, 6<->9 with p = 0.3.
std::vector<LabelFlip> mnist_label_flips();
// The paper's CIFAR-10 annotation noise: plane<->bird 0.4, cat->dog 0.4, dog->cat 0.3
// (classes 0 airplane, 2 bird, 3 cat, 5 dog).
std::vector<LabelMap> cifar10_label_maps();

// Each LabelFlip as its two LabelMaps.
std::vector<LabelMap> both_directions(const std::vector<LabelFlip>& flips);

// Changes labels as listed. Each example is decided once, from its label on entry, so a label
// moved by one entry is never moved again by another (cat->dog and dog->cat can both be listed).
// A class may be the `from` of at most one entry. Mask: 1 where the label changed.
std::vector<uint8_t> map_labels(ImageSet& set, const std::vector<LabelMap>& maps, Rng& rng);
// map_labels(set, both_directions(flips), rng); a class may appear in at most one pair.
std::vector<uint8_t> flip_labels(ImageSet& set, const std::vector<LabelFlip>& flips, Rng& rng);

// ---- random input noise ----
// Both choose exactly round(fraction * m) of the m images whose label is in `classes` (a
// seeded choice), corrupt them and keep their labels. Mask: 1 for each chosen image.

// The paper's noisy classes: MNIST {1,7,6,9}; CIFAR-10 {airplane, bird, cat, dog} = {0,2,3,5}.
inline const std::vector<int> kMnistNoisyClasses = {1, 7, 6, 9};
inline const std::vector<int> kCifar10NoisyClasses = {0, 2, 3, 5};

// The paper gives no magnitudes; these are lethe's defaults.
inline constexpr double kDefaultNoisyFraction = 0.3;  // paper: 30% of those classes' images
// Fraction of each chosen image's values set to 0 or 1 (each with probability 1/2). At 0.3 a
// 28x28 digit stays legible to a person but is far from the clean training distribution.
inline constexpr double kDefaultSaltPepperAmount = 0.3;
// Standard deviation of the added noise on the [0,1] pixel scale (result clamped to [0,1]):
// strong enough to hide fine texture on a 32x32 image, weak enough to keep the object visible.
inline constexpr double kDefaultGaussianSigma = 0.2;

// Exactly round(fraction * m) of the m images whose label is in `classes`, ascending.
std::vector<int64_t> choose_images(const ImageSet& set, const std::vector<int>& classes,
                                   double fraction, Rng& rng, const char* what);

// MNIST: each value of a chosen image is, with probability `amount`, set to 0 or 1.
std::vector<uint8_t> salt_and_pepper(ImageSet& set, const std::vector<int>& classes,
                                     double fraction, double amount, Rng& rng);
// CIFAR-10: each value of a chosen image gets N(0, sigma^2) added, then is clamped to [0,1].
std::vector<uint8_t> gaussian_noise(ImageSet& set, const std::vector<int>& classes,
                                    double fraction, double sigma, Rng& rng);

// ---- structured input noise ----
// The share of values a class's pattern sets, the random design's amount: in the oracle gate's
// sweep on MNIST (docs/noise.md) lighter patterns were learned too weakly to cause most failures
// and heavier ones made even a model trained without them fail the stamped queries.
inline constexpr double kDefaultPatternAmount = 0.3;
// The share of test images that carry the corruption as queries, for the designs whose failures
// are measured on them (pattern, partner).
inline constexpr double kDefaultQueryFraction = 0.3;
// Random noise as above is independent from image to image, so it is a feature of no class. The
// structured design draws one salt-and-pepper pattern per noisy class (each value of the image set
// to 0 or 1 with probability `amount`, once, from the seed) and stamps class c's pattern on the
// chosen images of class c, labels kept: a consistent input feature that only examples of c carry.
struct ClassPattern {
  int cls;
  std::vector<int64_t> index;  // flat indices (channel-major) of the values the pattern sets
  std::vector<float> value;    // 0 or 1 for each
};
// One pattern per class of `classes`, in that order, for images of `image_size` values.
std::vector<ClassPattern> draw_class_patterns(const std::vector<int>& classes, int64_t image_size, double amount,
                                              Rng& rng);
void stamp(float* image, const ClassPattern& pattern);
// Exactly round(fraction * m) of the m images whose label is in `classes` get their class's
// pattern; labels kept. Mask: 1 for each stamped image.
std::vector<uint8_t> class_pattern_noise(ImageSet& set, const std::vector<ClassPattern>& patterns, double fraction,
                                         Rng& rng);
// Test queries for the structured design: exactly round(fraction * n) of all n images get the
// pattern of a class other than their own (uniform over the patterns' classes), labels kept; a
// model that learned the pattern as its class's feature calls them that class. Mask: 1 where stamped.
std::vector<uint8_t> stamp_other_classes(ImageSet& set, const std::vector<ClassPattern>& patterns, double fraction,
                                         Rng& rng);

// The noisy classes' partners, for targeted attacks: MNIST 1<->7, 6<->9; CIFAR-10 airplane<->bird,
// cat<->dog. One entry per class of the dataset, -1 where a class has no partner.
std::vector<int> partner_classes(const std::string& dataset, int32_t num_classes);

// ---- adversarial poisoning ----
// The chosen images (as for random input noise) are replaced by an attack's output and take the
// label the attack gives them. The attack sees the clean set (to train a victim on) and the
// chosen images as a set of their own, whose pixels and labels it rewrites in place.
using Attack = std::function<void(const ImageSet& clean, ImageSet& targets)>;

// FGSM's step on the [0,1] pixel scale. 0.2 flips most of a small CNN's predictions on MNIST
// while the digit stays recognisable to a person.
inline constexpr double kDefaultFgsmEpsilon = 0.2;
inline constexpr int kDefaultVictimEpochs = 10;

// Mask: 1 for each replaced image, whether or not the attack changed its label.
std::vector<uint8_t> adversarial_poison(ImageSet& set, const std::vector<int>& classes, double fraction,
                                        const Attack& attack, Rng& rng);
// The same, and in the same call of the attack (one victim), attacked test queries: exactly
// round(query_fraction * m) of the m images of `queries` whose label is in `classes` (chosen with
// query_rng) are replaced by the attack's images but keep their true labels, so a model that
// follows the attack fails them. *query_mask: 1 for each replaced query.
std::vector<uint8_t> adversarial_poison(ImageSet& set, const std::vector<int>& classes, double fraction,
                                        const Attack& attack, Rng& rng, ImageSet& queries, double query_fraction,
                                        Rng& query_rng, std::vector<uint8_t>& query_mask);

// ---- masks on disk ----

// One line per example, "0" or "1", written atomically.
void save_mask(const std::string& path, const std::vector<uint8_t>& mask);
// Reads a mask written by save_mask; throws naming the file and line on anything else.
std::vector<uint8_t> load_mask(const std::string& path);

}  // namespace lethe::data
