#pragma once
// The training set D and test set T as the CLI flags define them: the same DataSpec always gives
// the same subset, the same noise (with its ground-truth mask) and the same normalisation.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "datasets/noise.h"
#include "datasets/transforms.h"

namespace lethe::data {

struct DataSpec {
  std::string dataset = "mnist";  // mnist | cifar10
  std::string dir;                // folder with the distribution's files; empty: data/<dataset>
  // Training examples drawn from the training split (<= 0: all). The same default for both
  // datasets: 3,000 is the paper's MNIST D and keeps a CIFAR-10 run CPU-sized; the paper's
  // CIFAR-10 protocol uses all 50,000 (subset 0).
  int64_t subset = 3000;
  std::string noise = "none";     // none | label | input | adversarial
  uint64_t seed = 0;
  // input and adversarial noise: the share of the noisy classes' images corrupted.
  double noise_fraction = kDefaultNoisyFraction;
  // Strength; below 0 means the kind's default (noise_amount_default): input noise on MNIST, the
  // share of pixels set to 0 or 1; on CIFAR-10, the Gaussian sigma; adversarial, the FGSM epsilon.
  double noise_amount = -1;
  // adversarial: epochs the victim model trains on the clean D before the attack.
  int victim_epochs = kDefaultVictimEpochs;
  // input and adversarial noise: how the corruption is made (noise_designs(noise) lists them); empty
  // means the default (default_noise_design). docs/noise.md has the oracle gate's sweep behind them.
  //   input        pattern  one fixed salt-and-pepper pattern per noisy class, on that class's chosen
  //                         images (MNIST's default: the design whose corruption causes the failures)
  //                random   each chosen image its own salt-and-pepper (MNIST) or Gaussian (CIFAR-10's
  //                         default) noise
  //   adversarial  untargeted  FGSM away from the true class
  //                partner     targeted FGSM towards the class's partner (MNIST 1<->7, 6<->9)
  std::string design;
  // input and adversarial noise: the share of test images that carry the corruption as queries, their
  // labels kept (below 0: the design's default, default_query_fraction). random and untargeted
  // corrupt that share of the noisy classes' test images as D's; pattern stamps that share of all
  // test images with another class's pattern.
  double query_fraction = -1;
  // A given normalisation on the [0,1] pixel scale, one value per channel or one for all (a model
  // trained elsewhere, with its own statistics): x -> (x - mean[c]) / stddev[c] on D and T alike.
  // Empty: computed from D as below. stddev empty with a mean given means all ones.
  std::vector<float> mean, stddev;
};

// Normalisation, computed on D after noise (unless the spec gives one) and applied to D and T alike:
//   mnist    x - mean (the paper's "training-subset mean subtracted"); stddev is all ones
//   cifar10  (x - mean[c]) / stddev[c] per channel, the usual CIFAR-10 input scaling for ResNets
struct PreparedData {
  ImageSet train;                // D: subset, noise applied, normalised
  ImageSet test;                 // T: normalised with D's statistics
  std::vector<float> mean;       // per-channel mean of D (after noise, before normalising)
  std::vector<float> stddev;     // per-channel divisor (1 where the dataset only centres)
  std::vector<uint8_t> noisy;    // ground truth: 1 where noise changed example i of D
  std::vector<uint8_t> test_noisy;  // 1 where test image i carries the corruption (noisy queries)
};

// Validates the spec (UsageError for bad values) and builds D and T. Adversarial noise needs a
// trained model, which this layer knows nothing of: the caller passes the attack (learning/poison.h
// builds one); the other kinds ignore it.
PreparedData prepare_data(const DataSpec& spec, const Attack& adversarial = {});

// The spec's given normalisation broadcast to `channels` values each ({} when none is given).
std::pair<std::vector<float>, std::vector<float>> given_normalisation(const DataSpec& spec, int64_t channels);

// Whether a and b define the same D and T (every field but the folder they are read from).
bool same_data(const DataSpec& a, const DataSpec& b);

// The strength spec.noise_amount stands for when it is below 0, for spec's dataset and noise.
double noise_amount_default(const DataSpec& spec);
// spec.noise_amount, or the default when it is below 0.
double noise_amount(const DataSpec& spec);

// The designs of a noise kind (empty for none and label).
const std::vector<std::string>& noise_designs(const std::string& noise);
// The design a spec without one gets: MNIST input noise pattern, CIFAR-10 input noise random,
// adversarial untargeted; "" for none and label.
std::string default_noise_design(const DataSpec& spec);
// spec.design, or the default when empty.
std::string noise_design(const DataSpec& spec);
// The share of test queries corrupted when spec.query_fraction is below 0.
double default_query_fraction(const DataSpec& spec);
double query_fraction(const DataSpec& spec);

// One line a report can print: the noise kind with its settings.
std::string describe_noise(const DataSpec& spec);

// Throws a UsageError (naming the flag) for a spec prepare_data would refuse, without reading data.
void validate_spec(const DataSpec& spec);
// The part of validate_spec that needs no dataset: each value in its own range (--subset >= 0,
// --mean/--std finite, --std > 0, ...), to check flags before anything is compared with them.
void validate_values(const DataSpec& spec);

// The noise kinds prepare_data understands, for --help texts and validation.
const std::vector<std::string>& noise_kinds();

// The datasets prepare_data reads, and the geometry of their images.
const std::vector<std::string>& dataset_names();
struct DatasetGeometry {
  int64_t channels, height, width;
  int32_t classes;
};
// Throws a UsageError (naming --dataset and the known names) for an unknown dataset.
DatasetGeometry dataset_geometry(const std::string& dataset);

// spec.dir, or data/<dataset> when it is empty.
std::string data_dir(const DataSpec& spec);

// Throws (naming the folder and what it should hold) unless data_dir(spec) exists and holds
// the dataset; cheap, so commands call it before they create outputs.
void check_data_folder(const DataSpec& spec);

// One split of the spec's dataset as stored, pixels in [0,1]: no subset, noise or normalising.
ImageSet read_split(const DataSpec& spec, Split split);

// The classes whose images input and adversarial noise corrupt: MNIST {1,7,6,9}, CIFAR-10
// {plane, bird, cat, dog}.
const std::vector<int>& noisy_classes(const std::string& dataset);

// Whether training augments by default (cifar10: yes; mnist: no, as in the paper).
bool augments_by_default(const std::string& dataset);
// Random crop with 4-pixel padding and horizontal flip; the padding is black in pixel space
// ((0 - mean) / stddev once normalised), as torchvision pads before it normalises.
Augmentation training_augmentation(const PreparedData& data);

}  // namespace lethe::data
