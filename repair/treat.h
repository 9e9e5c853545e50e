#pragma once
// Step II of the repair: remove a cause set C's information from the trained model.
//   finetune    Adam on D \ C from θ̂ (the paper's yardstick for the causes), stopped by a rule on a
//               held-out slice of D \ C and on Fq (repair/heldout_stop.h), or after a fixed count
//   retrain     from a fresh initialisation on D \ C (the gold standard, expensive)
//   newton      θ̂ + γ (N F̂ + δI)⁻¹ ∇ℓ(C; θ̂): one natural-gradient ascent step on C's loss, with
//               N F̂ the curvature of the summed loss over D (γ = 1: Guo et al.'s full removal step)
//   ewc-delete  Adam on −ℓ(C) + s·(N/2) Σ F̂_j (θ_j − θ̂_j)², early-stopped on Fq accuracy
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "datasets/transforms.h"
#include "learning/recipe.h"
#include "nn/module.h"
#include "influence/solve.h"

namespace lethe::repair {

// The registered treatments' names (repair/registry.h), in listing order.
std::vector<std::string> treatment_list();

// One evaluation of fine-tuning's held-out stopping rule: after `epoch` epochs (0: the model
// before fine-tuning), its accuracy on Fq and on the held-out examples of D \ C it classified
// correctly before fine-tuning (1 at epoch 0, as R's accuracy is for θ̂).
struct StopEvaluation {
  int epoch = 0;
  double fq = 0, heldout = 0;
  bool within = true;  // the held-out accuracy has not fallen more than the tolerance below its start
};

struct TreatOptions {
  std::string treatment = "finetune";
  int64_t batch = 64;      // finetune/retrain/ewc-delete mini-batch
  // finetune's stopping rule (docs/method.md, "Fine-tuning's stopping rule"): "heldout" holds
  // out a seeded `finetune_heldout` share of D \ C, fine-tunes on the rest, evaluates Fq and the
  // held-out examples it got right before fine-tuning after every epoch, keeps the epoch of best
  // Fq accuracy among those that keep all but `finetune_tolerance` of them right, and stops after
  // `finetune_patience` epochs without a better one or at `finetune_max_epochs`; "fixed" runs
  // `epochs` epochs on all of D \ C.
  // The rule by default: at 20 base epochs it repairs as the fixed two epochs did, after 200 it
  // repairs more with R unchanged (docs/noise.md, "Fine-tuning's stopping rule").
  std::string finetune_stop = "heldout";
  int finetune_max_epochs = 30;
  int finetune_patience = 3;
  double finetune_heldout = 0.1;
  double finetune_tolerance = 0.01;
  // finetune, fixed: "a few epochs" from θ̂; 2 epochs at 3e-4 measured best for R on label-noise
  // MNIST after a 20-epoch base model; more epochs or a larger step trade R for Fq.
  int epochs = 2;
  double lr = 3e-4;        // Adam step size (finetune, ewc-delete)
  int retrain_epochs = 20; // retrain: the training recipe of `lethe train`
  double retrain_lr = 1e-3;
  // retrain: from a fresh initialisation (its own stream) or from the one the model started from
  // ("base": the recipe's θ_0 and batch-order stream, so that C's absence is all that differs).
  std::string retrain_init = "fresh";
  std::optional<TrainingRecipe> recipe;  // how the model was trained, when known
  std::optional<data::Augmentation> augment;  // finetune, retrain: as the base model was trained
  // newton: defaults measured on label-noise MNIST (KFAC keeps R at 0.99 where the diagonal,
  // whose near-zero entries blow up, wrecks the model at any γ)
  double gamma = 0.1;
  SolverOptions solve = {.solver = "kfac", .damping = 100.0};
  // ewc-delete
  double strength = 1.0;   // s: weight of the Fisher anchor
  int max_steps = 300;
  int patience = 30;       // steps without a better Fq accuracy before stopping
  FisherOptions fisher;
  uint64_t seed = 0;
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
  std::function<void(const std::string& line)> log;
  // Called at each of the held-out rule's evaluations with the model as evaluated, for a caller
  // that measures more on it (the experiment's Fh and R for its trade-off curve); nothing the
  // rule decides reads what it does.
  std::function<void(const StopEvaluation&, Module&)> observe;
};

struct TreatResult {
  std::string treatment;
  double seconds = 0;
  std::map<std::string, double> stats;
  std::vector<StopEvaluation> curve;  // the held-out rule's evaluations, epoch 0 first (empty otherwise)
  std::string note;                   // what the treatment decided, in one line (empty: nothing to say)
};

void validate(const TreatOptions& options);

// Applies the treatment to `model` in place. `causes` index D; `fq` is the query failure set
// (ewc-delete stops on its accuracy). A diverging treatment throws and restores θ̂.
TreatResult treat(Module& model, const data::ImageSet& train, const std::vector<int64_t>& causes,
                  const data::ImageSet& fq, const TreatOptions& options);

// The training set without the given examples.
data::ImageSet without_examples(const data::ImageSet& train, const std::vector<int64_t>& causes);

}  // namespace lethe::repair
