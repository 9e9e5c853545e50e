#pragma once
// The training set D and test set T as the CLI flags define them: the same DataSpec always gives
// the same subset, the same noise (with its ground-truth mask) and the same normalisation.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/mnist.h"

namespace lethe::data {

struct DataSpec {
  std::string dataset = "mnist";  // mnist (cifar10 arrives with its reader)
  std::string dir;                // folder with the distribution's files
  int64_t subset = 3000;          // training examples drawn from the training split (<= 0: all)
  std::string noise = "none";     // none | label | input
  uint64_t seed = 0;
};

struct PreparedData {
  ImageSet train;                // D: subset, noise applied, mean subtracted
  ImageSet test;                 // T: mean of D subtracted
  std::vector<float> mean;       // per-channel mean of D (after noise, before subtraction)
  std::vector<uint8_t> noisy;    // ground truth: 1 where noise changed example i of D
};

// Validates the spec (UsageError for bad values) and builds D and T.
PreparedData prepare_data(const DataSpec& spec);

// The noise kinds prepare_data understands, for --help texts and validation.
const std::vector<std::string>& noise_kinds();

}  // namespace lethe::data
