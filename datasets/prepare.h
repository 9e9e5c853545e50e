#pragma once
// The training set D and test set T as the CLI flags define them: the same DataSpec always gives
// the same subset, the same noise (with its ground-truth mask) and the same normalisation.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "datasets/noise.h"

namespace lethe::data {

struct DataSpec {
  std::string dataset = "mnist";  // mnist (cifar10 arrives with its reader)
  std::string dir;                // folder with the distribution's files
  int64_t subset = 3000;          // training examples drawn from the training split (<= 0: all)
  std::string noise = "none";     // none | label | input | adversarial
  uint64_t seed = 0;
  // input and adversarial noise: the share of the noisy classes' images corrupted.
  double noise_fraction = kDefaultNoisyFraction;
  // Strength; below 0 means the kind's default (noise_amount_default): input noise on MNIST, the
  // share of pixels set to 0 or 1; on CIFAR-10, the Gaussian sigma; adversarial, the FGSM epsilon.
  double noise_amount = -1;
  // adversarial: epochs the victim model trains on the clean D before the attack.
  int victim_epochs = kDefaultVictimEpochs;
};

struct PreparedData {
  ImageSet train;                // D: subset, noise applied, mean subtracted
  ImageSet test;                 // T: mean of D subtracted
  std::vector<float> mean;       // per-channel mean of D (after noise, before subtraction)
  std::vector<uint8_t> noisy;    // ground truth: 1 where noise changed example i of D
};

// Validates the spec (UsageError for bad values) and builds D and T. Adversarial noise needs a
// trained model, which this layer knows nothing of: the caller passes the attack (nn/poison.h
// builds one); the other kinds ignore it.
PreparedData prepare_data(const DataSpec& spec, const Attack& adversarial = {});

// Whether a and b define the same D and T (every field but the folder they are read from).
bool same_data(const DataSpec& a, const DataSpec& b);

// The strength spec.noise_amount stands for when it is below 0, for spec's dataset and noise.
double noise_amount_default(const DataSpec& spec);
// spec.noise_amount, or the default when it is below 0.
double noise_amount(const DataSpec& spec);

// One line a report can print: the noise kind with its settings.
std::string describe_noise(const DataSpec& spec);

// Throws a UsageError (naming the flag) for a spec prepare_data would refuse, without reading data.
void validate_spec(const DataSpec& spec);

// The noise kinds prepare_data understands, for --help texts and validation.
const std::vector<std::string>& noise_kinds();

}  // namespace lethe::data
