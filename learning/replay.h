#pragma once
// A training run taken again, to be read step by step from its end backwards (sgd-influence,
// influence/sgd_adjoint.h). One pass from θ_0 keeps the run's state at the start of every epoch
// (TrainResume); each epoch is then run again from its start, alone, keeping every step. Both
// passes are train_classifier itself, so they take the run's steps exactly (the same batches,
// augmentation draws and arithmetic) and end where the run ended on the machine that ran it.
// Memory: the epochs' starting states (3P floats each: parameters and Adam's two moments) and one
// epoch's steps (4P floats each), P the parameter count.
#include <cstdint>
#include <memory>
#include <vector>

#include "datasets/mnist.h"
#include "learning/recipe.h"
#include "learning/train.h"
#include "nn/module.h"

namespace lethe {

// One Adam step as the run took it.
struct ReplayedStep {
  int epoch = 0;
  int64_t step = 0;             // 1-based over the run (Adam's bias corrections use it)
  std::vector<int64_t> idx;     // the batch's examples of D
  Rng augment;                  // the augmentation stream before the batch drew
  std::vector<float> theta;     // θ_t, where the step's gradient was taken (flatten_params' order)
  std::vector<float> grad;      // g_t: the batch's mean-loss gradient plus weight decay · θ_t, as Adam took it
  std::vector<float> m, v;      // Adam's moments after the step
};

class TrainingReplay {
 public:
  // `model` is the replay's own: its parameters are set to θ_0 from the recipe and then trained.
  TrainingReplay(Module& model, const data::ImageSet& train, const TrainingRecipe& recipe);

  // Takes the whole run once, keeping every epoch's starting state, and the steps of the epochs
  // from `keep_from` on as well (epoch_bytes() each; epoch_steps then needs no second pass for
  // them; 0 keeps none); returns θ_T.
  std::vector<float> run_through(int keep_from = 0);
  int epochs() const { return recipe_.training.epochs; }
  int64_t steps_per_epoch() const;
  // Bytes one epoch's steps take.
  int64_t epoch_bytes() const;
  // The steps of `epoch` (1-based; run_through first): those run_through kept (handed over once), or
  // recorded by taking that epoch again from its start, which leaves the model at the epoch's end.
  std::vector<ReplayedStep> epoch_steps(int epoch);
  // The batch of a step as training saw it: its examples, augmented as they were.
  data::ImageSet batch_of(const ReplayedStep& step) const;

 private:
  Module& model_;
  const data::ImageSet& train_;
  TrainingRecipe recipe_;
  std::vector<std::shared_ptr<const TrainResume>> starts_;  // [epoch - 1]
  std::vector<std::vector<ReplayedStep>> kept_;              // [epoch - 1], when run_through kept them

  // Records each step of the epochs from `from` on that train_classifier takes with `t` into `out`
  // (by epoch), θ_t starting at `theta`.
  void record_steps(TrainOptions& t, std::vector<float> theta, int from, std::vector<std::vector<ReplayedStep>>& out);
};

}  // namespace lethe
