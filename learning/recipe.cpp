#include "learning/recipe.h"

#include <fmt/format.h>

#include "learning/poison.h"
#include "nn/models.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe {

std::string default_model(const std::string& dataset) { return dataset == "cifar10" ? "cifar-cnn" : "mnist-cnn"; }

std::unique_ptr<Module> init_base_model(const std::string& name, uint64_t seed) {
  Rng init = stream(seed, Stream::kModelInit);
  return make_model(name, init);
}

void validate(const OptimizerChoice& c) {
  if (!(c.momentum >= 0 && c.momentum < 1))
    throw UsageError(fmt::format("--momentum {}: must be in [0, 1)", c.momentum));
  if (c.kind == OptimizerKind::Adam && c.momentum != 0)
    throw UsageError(fmt::format("--momentum {}: belongs to --optimizer sgd (Adam has its own moments)", c.momentum));
}

TrainOptions base_training(uint64_t seed, int epochs, int64_t batch, double lr, std::optional<data::Augmentation> augment,
                           OptimizerChoice optimizer) {
  validate(optimizer);
  TrainOptions t;
  t.epochs = epochs;
  t.batch = batch;
  t.optimizer = optimizer.kind;
  if (optimizer.kind == OptimizerKind::Sgd) {
    t.sgd.lr = static_cast<float>(lr);
    t.sgd.momentum = static_cast<float>(optimizer.momentum);
  } else {
    t.adam.lr = static_cast<float>(lr);
  }
  t.seed = stream_seed(seed, Stream::kTrainingOrder);
  t.augment = std::move(augment);
  return t;
}

void set_weight_decay(TrainOptions& t, float decay) {
  if (t.optimizer == OptimizerKind::Sgd)
    t.sgd.weight_decay = decay;
  else
    t.adam.weight_decay = decay;
}

void record_optimizer(const OptimizerChoice& c, std::map<std::string, std::string>& meta) {
  meta["lethe.train.optimizer"] = optimizer_name(c.kind);
  if (c.kind == OptimizerKind::Sgd)
    meta["lethe.train.momentum"] = fmt::format("{}", c.momentum);
  else
    meta.erase("lethe.train.momentum");
}

OptimizerChoice recorded_optimizer(const std::map<std::string, std::string>& meta) {
  OptimizerChoice c;
  const auto kind = meta.find("lethe.train.optimizer");
  if (kind == meta.end()) return c;
  if (kind->second != "adam" && kind->second != "sgd")
    fail("the checkpoint records an unknown optimiser '{}' (lethe.train.optimizer)", kind->second);
  c.kind = parse_optimizer_kind(kind->second);
  if (const auto m = meta.find("lethe.train.momentum"); m != meta.end() && c.kind == OptimizerKind::Sgd) {
    size_t used = 0;
    try {
      c.momentum = std::stod(m->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != m->second.size() || !(c.momentum >= 0 && c.momentum < 1))
      fail("the checkpoint's lethe.train.momentum '{}' is not a momentum in [0, 1)", m->second);
  }
  return c;
}

std::string describe(const OptimizerChoice& c) {
  return c.kind == OptimizerKind::Sgd ? fmt::format("sgd (momentum {})", c.momentum) : "adam";
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
