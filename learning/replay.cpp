#include "learning/replay.h"

#include "datasets/transforms.h"
#include "nn/optim.h"
#include "util/error.h"

namespace lethe {

TrainingReplay::TrainingReplay(Module& model, const data::ImageSet& train, const TrainingRecipe& recipe)
    : model_(model), train_(train), recipe_(recipe) {
  if (!model.named_buffers().empty())
    fail("replaying the training of a model with BatchNorm is not supported: each step's per-example gradients "
         "depend on its batch statistics");
  if (recipe_.training.optimizer != OptimizerKind::Adam)
    fail("replaying a training run of {}: the replay records Adam's steps, and only Adam's", optimizer_name(recipe_.training.optimizer));
  if (recipe_.training.epochs < 1) fail("replaying a training run of {} epochs", recipe_.training.epochs);
  recipe_.training.on_batch = nullptr;
  recipe_.training.on_epoch = nullptr;
  recipe_.training.on_step = nullptr;
  recipe_.training.on_epoch_start = nullptr;
  recipe_.training.resume = nullptr;
  recipe_.training.stop_after = nullptr;
}

int64_t TrainingReplay::steps_per_epoch() const {
  const int64_t b = recipe_.training.batch;
  return (train_.n + b - 1) / b;
}

int64_t TrainingReplay::epoch_bytes() const {
  return steps_per_epoch() * 4 * model_.parameter_count() * static_cast<int64_t>(sizeof(float));
}

std::vector<float> TrainingReplay::run_through(int keep_from) {
  auto init = init_base_model(recipe_.architecture, recipe_.seed);
  assign_params(model_, flatten_params(*init));
  TrainOptions t = recipe_.training;
  starts_.clear();
  kept_.clear();
  t.on_epoch_start = [&](const TrainResume& r) { starts_.push_back(std::make_shared<const TrainResume>(r)); };
  if (keep_from > 0) record_steps(t, flatten_params(model_), keep_from, kept_);
  train_classifier(model_, train_, t);
  return flatten_params(model_);
}

std::vector<ReplayedStep> TrainingReplay::epoch_steps(int epoch) {
  if (epoch < 1 || epoch > static_cast<int>(starts_.size()))
    fail("replay: epoch {} of {} recorded (run_through first)", epoch, starts_.size());
  if (static_cast<int>(kept_.size()) >= epoch && !kept_[static_cast<size_t>(epoch - 1)].empty())
    return std::move(kept_[static_cast<size_t>(epoch - 1)]);
  TrainOptions t = recipe_.training;
  t.resume = starts_[static_cast<size_t>(epoch - 1)];
  t.epochs = epoch;
  std::vector<float> theta;  // θ at the epoch's start
  for (const auto& p : t.resume->parameters) theta.insert(theta.end(), p.begin(), p.end());
  std::vector<std::vector<ReplayedStep>> steps;
  record_steps(t, std::move(theta), epoch, steps);
  train_classifier(model_, train_, t);
  return std::move(steps.at(static_cast<size_t>(epoch - 1)));
}

void TrainingReplay::record_steps(TrainOptions& t, std::vector<float> theta, int from,
                                  std::vector<std::vector<ReplayedStep>>& out) {
  const float decay = t.adam.weight_decay;
  t.on_step = [this, &out, decay, from, theta = std::move(theta)](const TrainStep& s) mutable {
    if (s.epoch < from) {
      theta = flatten_params(model_);
      return;
    }
    ReplayedStep r;
    r.epoch = s.epoch;
    r.step = s.step;
    r.idx = s.idx;
    r.augment = s.augment_before;
    std::vector<Tensor> grads;
    for (auto& p : model_.parameters()) grads.push_back(p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), p.device()));
    r.grad = concatenated(grads);
    // Adam's kernel adds the decay to the gradient in float (kernels/cpu/optim.cpp): the same here.
    if (decay != 0.0f)
      for (size_t j = 0; j < r.grad.size(); ++j) r.grad[j] = r.grad[j] + decay * theta[j];
    const auto& adam = dynamic_cast<const Adam&>(s.optimizer);  // the constructor refused any other
    r.m = concatenated(adam.first_moments());
    r.v = concatenated(adam.second_moments());
    r.theta = std::move(theta);
    theta = flatten_params(model_);  // θ before the next step
    if (out.size() < static_cast<size_t>(s.epoch)) out.resize(static_cast<size_t>(s.epoch));
    out[static_cast<size_t>(s.epoch - 1)].push_back(std::move(r));
  };
}

data::ImageSet TrainingReplay::batch_of(const ReplayedStep& step) const {
  data::ImageSet batch = data::take(train_, step.idx);
  if (recipe_.training.augment) {
    Rng rng = step.augment;
    data::augment_images(batch.pixels.data(), batch.n, batch.channels, batch.height, batch.width,
                         *recipe_.training.augment, rng);
  }
  return batch;
}

}  // namespace lethe
