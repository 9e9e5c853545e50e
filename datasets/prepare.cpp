#include "datasets/prepare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/ranges.h>

#include "datasets/noise.h"
#include "datasets/transforms.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe::data {

const std::vector<std::string>& noise_kinds() {
  static const std::vector<std::string> kinds = {"none", "label", "input", "adversarial"};
  return kinds;
}

bool same_data(const DataSpec& a, const DataSpec& b) {
  return a.dataset == b.dataset && a.subset == b.subset && a.noise == b.noise && a.seed == b.seed &&
         a.noise_fraction == b.noise_fraction && noise_amount(a) == noise_amount(b) &&
         (a.noise != "adversarial" || a.victim_epochs == b.victim_epochs);
}

double noise_amount_default(const DataSpec& spec) {
  if (spec.noise == "adversarial") return kDefaultFgsmEpsilon;
  if (spec.noise == "input") return spec.dataset == "cifar10" ? kDefaultGaussianSigma : kDefaultSaltPepperAmount;
  return 0.0;
}

double noise_amount(const DataSpec& spec) { return spec.noise_amount < 0 ? noise_amount_default(spec) : spec.noise_amount; }

std::string describe_noise(const DataSpec& spec) {
  const int percent = static_cast<int>(std::lround(spec.noise_fraction * 100));
  if (spec.noise == "label") return "label (1<->7 flipped with p = 0.4, 6<->9 with p = 0.3)";
  if (spec.noise == "input")
    return fmt::format("input (salt-and-pepper on {}% of the images of classes 1,7,6,9, {} of their pixels)", percent,
                       noise_amount(spec));
  if (spec.noise == "adversarial")
    return fmt::format("adversarial (FGSM at epsilon {} on {}% of the images of classes 1,7,6,9, against a victim "
                       "trained {} epochs on the clean D, labelled with its prediction)",
                       noise_amount(spec), percent, spec.victim_epochs);
  return spec.noise;
}

void validate_spec(const DataSpec& spec) {
  if (spec.dataset != "mnist") throw UsageError(fmt::format("--dataset: unknown dataset '{}' (known: mnist)", spec.dataset));
  const auto& kinds = noise_kinds();
  if (std::find(kinds.begin(), kinds.end(), spec.noise) == kinds.end())
    throw UsageError(fmt::format("--noise: unknown kind '{}' (known: {})", spec.noise, fmt::join(kinds, ", ")));
  if (!(spec.noise_fraction >= 0.0 && spec.noise_fraction <= 1.0))
    throw UsageError(fmt::format("--noise-fraction {}: must be in [0, 1]", spec.noise_fraction));
  const double amount = noise_amount(spec);
  if (!std::isfinite(amount)) throw UsageError(fmt::format("--noise-amount {}: must be finite", spec.noise_amount));
  if (spec.noise == "input" && spec.dataset == "mnist" && amount > 1.0)
    throw UsageError(fmt::format("--noise-amount {}: the share of pixels salt-and-pepper noise sets must be in [0, 1]", amount));
  if (spec.victim_epochs < 1) throw UsageError(fmt::format("--victim-epochs {}: must be >= 1", spec.victim_epochs));
  if (spec.dir.empty()) throw UsageError("--data: no data folder given");
}

PreparedData prepare_data(const DataSpec& spec, const Attack& adversarial) {
  validate_spec(spec);
  if (!std::filesystem::is_directory(spec.dir))
    fail("data folder '{}' does not exist (run `lethe fetch-data mnist --data {}`)", spec.dir, spec.dir);

  PreparedData out;
  ImageSet full = read_mnist(spec.dir, Split::Train);
  const int64_t n = spec.subset <= 0 ? full.n : spec.subset;
  if (n > full.n) throw UsageError(fmt::format("--subset {} is larger than the {} training examples", n, full.n));
  const auto idx = seeded_subset(full.n, n, spec.seed);
  out.train = take(full, idx);
  full = ImageSet();  // release the 180 MB split

  // Independent sub-streams so a change in one stage does not move another's draws.
  Rng noise_rng = Rng(spec.seed).fork(1);
  const double amount = noise_amount(spec);
  if (spec.noise == "label") {
    out.noisy = flip_labels(out.train, mnist_label_flips(), noise_rng);
  } else if (spec.noise == "input") {
    out.noisy = salt_and_pepper(out.train, kMnistNoisyClasses, spec.noise_fraction, amount, noise_rng);
  } else if (spec.noise == "adversarial") {
    if (!adversarial) fail("--noise adversarial: this program gave no attack to make the poisoned images with");
    out.noisy = adversarial_poison(out.train, kMnistNoisyClasses, spec.noise_fraction, adversarial, noise_rng);
  } else {
    out.noisy.assign(static_cast<size_t>(out.train.n), 0);
  }

  out.mean = pixel_mean(out.train);
  subtract_mean(out.train, out.mean);
  out.test = read_mnist(spec.dir, Split::Test);
  subtract_mean(out.test, out.mean);
  return out;
}

}  // namespace lethe::data
