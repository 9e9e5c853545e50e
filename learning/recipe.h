#pragma once
// The recipe of the base model: which architecture a dataset gets, how it is initialised and
// trained from a seed, and how D is built when building it needs a model (adversarial noise's
// victim). `lethe train` and the experiment both use it, so the same seed and settings give the
// same model whichever command trains it.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "datasets/prepare.h"
#include "learning/train.h"
#include "nn/module.h"

namespace lethe {

// The model a dataset trains when none is named: mnist-cnn for mnist, cifar-cnn for cifar10.
std::string default_model(const std::string& dataset);

// `name` initialised from the seed's model-init stream, in training mode, on the CPU.
std::unique_ptr<Module> init_base_model(const std::string& name, uint64_t seed);

// Adam at `lr` for `epochs` in batches of `batch`, the batch order from the seed's
// training-order stream.
TrainOptions base_training(uint64_t seed, int epochs, int64_t batch, double lr,
                           std::optional<data::Augmentation> augment = std::nullopt);

// How a model was trained, when lethe trained it: enough to take the same steps again
// (learning/replay.h). `lethe train` records it in the checkpoint; the experiment knows it.
struct TrainingRecipe {
  std::string architecture;  // make_model's reference (a name or a spec's JSON text)
  uint64_t seed = 0;         // the run's seed: init_base_model(architecture, seed) is θ_0
  TrainOptions training;     // epochs, batch, Adam, the batch order's seed, the augmentation
};

// prepare_data with the attack adversarial noise needs (a victim of the dataset's default model,
// trained on `device`); the one way every command builds D and T. `log` gets one line per stage.
data::PreparedData prepare_data_with_victim(const data::DataSpec& spec, Device device,
                                            const std::function<void(const std::string&)>& log = {});

}  // namespace lethe
