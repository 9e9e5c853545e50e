#pragma once
// The settings file of `lethe experiment --config FILE.json`: a JSON object whose keys are the
// flags' names. Parsed on its own (it is a fuzzing target) into values that are all checked for
// type and range here, so a hostile file is one clear error and never undefined behaviour
// (a number like 1e300 converted to an int, say).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::cli {

// What a config file sets; a key it does not mention stays empty.
struct ExperimentConfig {
  std::optional<std::string> dataset, data, noise, model, noise_design, removal, retrain_init, finetune_stop, fisher;
  std::optional<int64_t> subset, batch;
  std::optional<int> epochs, seeds, victim_epochs, finetune_max_epochs, finetune_patience, mc_samples;
  std::optional<double> lr, noise_fraction, noise_amount, noisy_queries, finetune_heldout, finetune_tolerance;
  std::optional<std::vector<std::string>> methods, treatments;
  std::optional<std::vector<int64_t>> ks;
};

// Parses `text`; `name` (the file) prefixes every error. Invalid JSON is an Error; an unknown
// key, a value of the wrong type or one out of its type's range is a UsageError.
ExperimentConfig parse_experiment_config(std::string_view text, const std::string& name);

}  // namespace lethe::cli
