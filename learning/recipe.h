#pragma once
// The recipe of the base model: which architecture a dataset gets, how it is initialised and
// trained from a seed, and how D is built when building it needs a model (adversarial noise's
// victim). `lethe train` and the experiment both use it, so the same seed and settings give the
// same model whichever command trains it.
#include <cstdint>
#include <functional>
#include <map>
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

// The optimiser of a recipe: Adam, or SGD with momentum μ (`--optimizer`, `--momentum`).
struct OptimizerChoice {
  OptimizerKind kind = OptimizerKind::Adam;
  double momentum = 0;  // SGD's μ; Adam has none
};
// UsageError naming the flag: μ outside [0, 1), or a momentum given to Adam.
void validate(const OptimizerChoice& choice);

// The optimiser (Adam by default) at `lr` for `epochs` in batches of `batch`, the batch order
// from the seed's training-order stream.
TrainOptions base_training(uint64_t seed, int epochs, int64_t batch, double lr,
                           std::optional<data::Augmentation> augment = std::nullopt, OptimizerChoice optimizer = {});

// The L2 weight decay of whichever optimiser the options step with.
void set_weight_decay(TrainOptions& t, float decay);

// A checkpoint's record of the optimiser ("lethe.train.optimizer": adam | sgd, and SGD's
// "lethe.train.momentum"), and its reading back: a record without them (every checkpoint from
// before they were recorded) is Adam's.
void record_optimizer(const OptimizerChoice& choice, std::map<std::string, std::string>& meta);
OptimizerChoice recorded_optimizer(const std::map<std::string, std::string>& meta);
std::string describe(const OptimizerChoice& choice);  // "adam", "sgd (momentum 0.9)"

// How a model was trained, when lethe trained it: enough to take the same steps again
// (learning/replay.h). `lethe train` records it in the checkpoint; the experiment knows it.
struct TrainingRecipe {
  std::string architecture;  // make_model's reference (a name or a spec's JSON text)
  uint64_t seed = 0;         // the run's seed: init_base_model(architecture, seed) is θ_0
  TrainOptions training;     // epochs, batch, the optimiser (Adam or SGD), the batch order's seed, the augmentation
};

// prepare_data with the attack adversarial noise needs (a victim of the dataset's default model,
// trained on `device`); the one way every command builds D and T. `log` gets one line per stage.
data::PreparedData prepare_data_with_victim(const data::DataSpec& spec, Device device,
                                            const std::function<void(const std::string&)>& log = {});

}  // namespace lethe
