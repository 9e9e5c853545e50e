#include "datasets/prepare.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <filesystem>

#include <fmt/ranges.h>

#include "datasets/cifar10.h"
#include "datasets/noise.h"
#include "datasets/transforms.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/streams.h"

namespace lethe::data {

const std::vector<std::string>& noise_kinds() {
  static const std::vector<std::string> kinds = {"none", "label", "input", "adversarial"};
  return kinds;
}

std::pair<std::vector<float>, std::vector<float>> given_normalisation(const DataSpec& spec, int64_t channels) {
  if (spec.mean.empty()) return {};
  auto widen = [&](const std::vector<float>& v, float fallback) {
    if (v.empty()) return std::vector<float>(static_cast<size_t>(channels), fallback);
    return v.size() == 1 ? std::vector<float>(static_cast<size_t>(channels), v[0]) : v;
  };
  return {widen(spec.mean, 0.0f), widen(spec.stddev, 1.0f)};
}

const std::vector<std::string>& noise_designs(const std::string& noise) {
  static const std::vector<std::string> none, input = {"pattern", "random"}, adversarial = {"untargeted", "partner"};
  if (noise == "input") return input;
  if (noise == "adversarial") return adversarial;
  return none;
}

std::string default_noise_design(const DataSpec& spec) {
  const auto& designs = noise_designs(spec.noise);
  if (designs.empty()) return "";
  // CIFAR-10 keeps per-image Gaussian noise: the pattern design's gate was measured on MNIST only.
  if (spec.noise == "input" && spec.dataset == "cifar10") return "random";
  return designs.front();
}

std::string noise_design(const DataSpec& spec) { return spec.design.empty() ? default_noise_design(spec) : spec.design; }

double default_query_fraction(const DataSpec& spec) {
  const std::string design = noise_design(spec);
  return design == "pattern" || design == "partner" ? kDefaultQueryFraction : 0.0;
}

double query_fraction(const DataSpec& spec) {
  return spec.query_fraction < 0 ? default_query_fraction(spec) : spec.query_fraction;
}

bool same_data(const DataSpec& a, const DataSpec& b) {
  const int64_t channels = dataset_geometry(a.dataset).channels;
  if (given_normalisation(a, channels) != given_normalisation(b, channels)) return false;
  return a.dataset == b.dataset && a.subset == b.subset && a.noise == b.noise && a.seed == b.seed &&
         a.noise_fraction == b.noise_fraction && noise_amount(a) == noise_amount(b) &&
         (a.noise != "adversarial" || a.victim_epochs == b.victim_epochs) && noise_design(a) == noise_design(b) &&
         query_fraction(a) == query_fraction(b);
}

double noise_amount_default(const DataSpec& spec) {
  if (spec.noise == "adversarial") return kDefaultFgsmEpsilon;
  if (spec.noise == "input" && noise_design(spec) == "pattern") return kDefaultPatternAmount;
  if (spec.noise == "input") return spec.dataset == "cifar10" ? kDefaultGaussianSigma : kDefaultSaltPepperAmount;
  return 0.0;
}

double noise_amount(const DataSpec& spec) { return spec.noise_amount < 0 ? noise_amount_default(spec) : spec.noise_amount; }

namespace {
std::string describe_corruption(const DataSpec& spec) {
  const int percent = static_cast<int>(std::lround(spec.noise_fraction * 100));
  const bool cifar = spec.dataset == "cifar10";
  const char* classes = cifar ? "plane, bird, cat, dog" : "1,7,6,9";
  const std::string design = noise_design(spec);
  if (spec.noise == "input" && design == "pattern")
    return fmt::format("input, pattern (one fixed salt-and-pepper pattern per class, {} of the values, on {}% of the "
                       "images of classes {}, labels kept)",
                       noise_amount(spec), percent, classes);
  if (spec.noise == "adversarial" && design == "partner")
    return fmt::format("adversarial, partner (FGSM at epsilon {} towards the partner class, {}, on {}% of the images "
                       "of classes {}, against a victim trained {} epochs on the clean D, labelled with its prediction)",
                       noise_amount(spec), cifar ? "plane<->bird, cat<->dog" : "1<->7, 6<->9", percent, classes,
                       spec.victim_epochs);
  if (spec.noise == "label")
    return cifar ? "label (plane<->bird flipped with p = 0.4, cat->dog with 0.4, dog->cat with 0.3)"
                 : "label (1<->7 flipped with p = 0.4, 6<->9 with p = 0.3)";
  if (spec.noise == "input")
    return cifar ? fmt::format("input (Gaussian noise of sigma {} on {}% of the images of classes {})",
                               noise_amount(spec), percent, classes)
                 : fmt::format("input (salt-and-pepper on {}% of the images of classes {}, {} of their pixels)",
                               percent, classes, noise_amount(spec));
  if (spec.noise == "adversarial")
    return fmt::format("adversarial (FGSM at epsilon {} on {}% of the images of classes {}, against a victim "
                       "trained {} epochs on the clean D, labelled with its prediction)",
                       noise_amount(spec), percent, classes, spec.victim_epochs);
  return spec.noise;
}
}  // namespace

std::string describe_noise(const DataSpec& spec) {
  std::string text = describe_corruption(spec);
  const double q = query_fraction(spec);
  if (q > 0) {
    const int percent = static_cast<int>(std::lround(q * 100));
    text += noise_design(spec) == "pattern"
                ? fmt::format("; {}% of the test images carry another class's pattern", percent)
                : fmt::format("; {}% of the noisy classes' test images corrupted the same way", percent);
  }
  return text;
}

void validate_values(const DataSpec& spec) {
  if (spec.subset < 0)
    throw UsageError(fmt::format("--subset {}: must be >= 0 (0 takes the whole training split)", spec.subset));
  for (const auto& [flag, values] : {std::pair{"--mean", &spec.mean}, std::pair{"--std", &spec.stddev}})
    for (const float v : *values)
      if (!std::isfinite(v) || (flag == std::string_view("--std") && !(v > 0)))
        throw UsageError(fmt::format("{}: {} is not {}", flag, v, flag == std::string_view("--std") ? "a positive number" : "finite"));
  if (!(spec.noise_fraction >= 0.0 && spec.noise_fraction <= 1.0))
    throw UsageError(fmt::format("--noise-fraction {}: must be in [0, 1]", spec.noise_fraction));
  if (spec.victim_epochs < 1) throw UsageError(fmt::format("--victim-epochs {}: must be >= 1", spec.victim_epochs));
}

void validate_spec(const DataSpec& spec) {
  validate_values(spec);
  const int64_t channels = dataset_geometry(spec.dataset).channels;
  for (const auto& [flag, values] : {std::pair{"--mean", &spec.mean}, std::pair{"--std", &spec.stddev}})
    if (!values->empty() && values->size() != 1 && static_cast<int64_t>(values->size()) != channels)
      throw UsageError(fmt::format("{}: {} values given; {} has {} channel{} (give one value, or one per channel)", flag,
                                   values->size(), spec.dataset, channels, channels == 1 ? "" : "s"));
  if (spec.mean.empty() && !spec.stddev.empty())
    throw UsageError("--std needs --mean (the normalisation is given whole, or computed from D)");
  const auto& kinds = noise_kinds();
  if (std::find(kinds.begin(), kinds.end(), spec.noise) == kinds.end())
    throw UsageError(fmt::format("--noise: unknown kind '{}' (known: {})", spec.noise, fmt::join(kinds, ", ")));
  const double amount = noise_amount(spec);
  if (!std::isfinite(amount)) throw UsageError(fmt::format("--noise-amount {}: must be finite", spec.noise_amount));
  if (spec.noise == "input" && spec.dataset == "mnist" && amount > 1.0)
    throw UsageError(fmt::format("--noise-amount {}: the share of pixels salt-and-pepper noise sets must be in [0, 1]", amount));
  const auto& designs = noise_designs(spec.noise);
  if (!spec.design.empty() && std::find(designs.begin(), designs.end(), spec.design) == designs.end())
    throw UsageError(designs.empty() ? fmt::format("--noise-design {}: --noise {} has no designs", spec.design, spec.noise)
                                     : fmt::format("--noise-design {}: unknown for --noise {} (known: {})", spec.design,
                                                   spec.noise, fmt::join(designs, ", ")));
  const double q = query_fraction(spec);
  if (!(q >= 0.0 && q <= 1.0)) throw UsageError(fmt::format("--noisy-queries {}: must be in [0, 1]", spec.query_fraction));
  if (q > 0 && designs.empty())
    throw UsageError(fmt::format("--noisy-queries {}: only input and adversarial noise corrupt test queries", q));
  if (noise_design(spec) == "pattern" && amount > 1.0)
    throw UsageError(fmt::format("--noise-amount {}: the share of values a pattern sets must be in [0, 1]", amount));
}

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"mnist", "cifar10"};
  return names;
}

DatasetGeometry dataset_geometry(const std::string& dataset) {
  if (dataset == "mnist") return {1, 28, 28, 10};
  if (dataset == "cifar10") return {kCifar10Channels, kCifar10Side, kCifar10Side, kCifar10Classes};
  throw UsageError(fmt::format("--dataset: unknown dataset '{}' (known: mnist, cifar10)", dataset));
}

std::string data_dir(const DataSpec& spec) { return spec.dir.empty() ? "data/" + spec.dataset : spec.dir; }

void check_data_folder(const DataSpec& spec) {
  dataset_geometry(spec.dataset);  // an unknown name is a usage error before any file is touched
  const std::string dir = data_dir(spec);
  if (spec.dataset == "cifar10") {
    find_cifar10_folder(dir);
  } else if (!std::filesystem::is_directory(dir)) {
    fail("data folder '{}' does not exist (run `lethe fetch-data mnist --data {}`)", dir, dir);
  }
}

ImageSet read_split(const DataSpec& spec, Split split) {
  check_data_folder(spec);
  const std::string dir = data_dir(spec);
  return spec.dataset == "cifar10" ? read_cifar10(dir, split) : read_mnist(dir, split);
}

const std::vector<int>& noisy_classes(const std::string& dataset) {
  return dataset == "cifar10" ? kCifar10NoisyClasses : kMnistNoisyClasses;
}

bool augments_by_default(const std::string& dataset) { return dataset == "cifar10"; }

Augmentation training_augmentation(const PreparedData& data) {
  Augmentation a;
  a.pad = 4;
  a.flip = true;
  for (size_t c = 0; c < data.mean.size(); ++c) a.fill.push_back((0.0f - data.mean[c]) / data.stddev[c]);
  return a;
}

PreparedData prepare_data(const DataSpec& spec, const Attack& adversarial) {
  validate_spec(spec);
  const bool cifar = spec.dataset == "cifar10";

  PreparedData out;
  ImageSet full = read_split(spec, Split::Train);
  const int64_t n = spec.subset <= 0 ? full.n : spec.subset;
  if (n > full.n) throw UsageError(fmt::format("--subset {} is larger than the {} training examples", n, full.n));
  const auto idx = seeded_subset(full.n, n, spec.seed);
  out.train = take(full, idx);
  full = ImageSet();  // release the full split (180 MB for MNIST, 600 MB for CIFAR-10)

  // Independent sub-streams so a change in one stage does not move another's draws.
  Rng noise_rng = stream(spec.seed, Stream::kNoise);
  Rng query_rng = stream(spec.seed, Stream::kNoisyQueries);
  const double amount = noise_amount(spec);
  const double queries = query_fraction(spec);
  const std::string design = noise_design(spec);
  const auto& classes = noisy_classes(spec.dataset);
  out.test = read_split(spec, Split::Test);
  out.test_noisy.assign(static_cast<size_t>(out.test.n), 0);
  if (spec.noise == "label") {
    out.noisy = cifar ? map_labels(out.train, cifar10_label_maps(), noise_rng)
                      : flip_labels(out.train, mnist_label_flips(), noise_rng);
  } else if (spec.noise == "input" && design == "pattern") {
    const auto patterns = draw_class_patterns(classes, out.train.image_size(), amount, noise_rng);
    out.noisy = class_pattern_noise(out.train, patterns, spec.noise_fraction, noise_rng);
    if (queries > 0) out.test_noisy = stamp_other_classes(out.test, patterns, queries, query_rng);
  } else if (spec.noise == "input") {
    auto corrupt = [&](ImageSet& set, double fraction, Rng& rng) {
      return cifar ? gaussian_noise(set, classes, fraction, amount, rng)
                   : salt_and_pepper(set, classes, fraction, amount, rng);
    };
    out.noisy = corrupt(out.train, spec.noise_fraction, noise_rng);
    if (queries > 0) out.test_noisy = corrupt(out.test, queries, query_rng);
  } else if (spec.noise == "adversarial") {
    if (!adversarial) fail("--noise adversarial: this program gave no attack to make the poisoned images with");
    out.noisy = queries > 0 ? adversarial_poison(out.train, classes, spec.noise_fraction, adversarial, noise_rng,
                                                 out.test, queries, query_rng, out.test_noisy)
                            : adversarial_poison(out.train, classes, spec.noise_fraction, adversarial, noise_rng);
  } else {
    out.noisy.assign(static_cast<size_t>(out.train.n), 0);
  }

  if (!spec.mean.empty()) {
    std::tie(out.mean, out.stddev) = given_normalisation(spec, out.train.channels);
  } else {
    out.mean = pixel_mean(out.train);
    out.stddev = cifar ? pixel_std(out.train, out.mean) : std::vector<float>(out.mean.size(), 1.0f);
  }
  normalise(out.train, out.mean, out.stddev);
  normalise(out.test, out.mean, out.stddev);
  return out;
}

}  // namespace lethe::data
