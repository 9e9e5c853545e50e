#include "datasets/prepare.h"

#include <algorithm>
#include <filesystem>

#include "datasets/noise.h"
#include "datasets/transforms.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe::data {

const std::vector<std::string>& noise_kinds() {
  static const std::vector<std::string> kinds = {"none", "label", "input"};
  return kinds;
}

PreparedData prepare_data(const DataSpec& spec) {
  if (spec.dataset != "mnist") throw UsageError(fmt::format("--dataset: unknown dataset '{}' (known: mnist)", spec.dataset));
  const auto& kinds = noise_kinds();
  if (std::find(kinds.begin(), kinds.end(), spec.noise) == kinds.end())
    throw UsageError(fmt::format("--noise: unknown kind '{}' (known: none, label, input)", spec.noise));
  if (spec.dir.empty()) throw UsageError("--data: no data folder given");
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
  if (spec.noise == "label") {
    out.noisy = flip_labels(out.train, mnist_label_flips(), noise_rng);
  } else if (spec.noise == "input") {
    out.noisy = salt_and_pepper(out.train, kMnistNoisyClasses, kDefaultNoisyFraction, kDefaultSaltPepperAmount, noise_rng);
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
