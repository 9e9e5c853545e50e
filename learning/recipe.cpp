#include "learning/recipe.h"

#include <fmt/format.h>

#include "learning/poison.h"
#include "nn/models.h"
#include "util/streams.h"

namespace lethe {

std::string default_model(const std::string& dataset) { return dataset == "cifar10" ? "cifar-cnn" : "mnist-cnn"; }

std::unique_ptr<Module> init_base_model(const std::string& name, uint64_t seed) {
  Rng init = stream(seed, Stream::kModelInit);
  return make_model(name, init);
}

TrainOptions base_training(uint64_t seed, int epochs, int64_t batch, double lr, std::optional<data::Augmentation> augment) {
  TrainOptions t;
  t.epochs = epochs;
  t.batch = batch;
  t.adam.lr = static_cast<float>(lr);
  t.seed = stream_seed(seed, Stream::kTrainingOrder);
  t.augment = std::move(augment);
  return t;
}

data::PreparedData prepare_data_with_victim(const data::DataSpec& spec, Device device,
                                            const std::function<void(const std::string&)>& log) {
  data::Attack attack;
  if (spec.noise == "adversarial") {
    VictimOptions victim;
    victim.model = default_model(spec.dataset);
    victim.epochs = spec.victim_epochs;
    victim.epsilon = data::noise_amount(spec);
    victim.seed = spec.seed;
    victim.device = device;
    if (data::noise_design(spec) == "partner")
      victim.target = data::partner_classes(spec.dataset, data::dataset_geometry(spec.dataset).classes);
    victim.log = log;
    if (log) log(fmt::format("adversarial poisoning: training the victim for {} epochs", spec.victim_epochs));
    attack = fgsm_victim_attack(victim);
  }
  return data::prepare_data(spec, attack);
}

}  // namespace lethe
