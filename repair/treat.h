#pragma once
// Step II of the repair: remove a cause set C's information from the trained model.
//   finetune    Adam on D \ C from θ̂ for a few epochs (the paper's yardstick for the causes)
//   retrain     from a fresh initialisation on D \ C (the gold standard, expensive)
//   newton      θ̂ + γ (F̂ + δI)⁻¹ ∇ℓ(C; θ̂): one natural-gradient ascent step on C's loss
//   ewc-delete  Adam on −ℓ(C) + s·(N/2) Σ F̂_j (θ_j − θ̂_j)², early-stopped on Fq accuracy
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "repair/solve.h"

namespace lethe::repair {

const std::vector<std::string>& treatments();

struct TreatOptions {
  std::string treatment = "finetune";
  int64_t batch = 64;      // finetune/retrain/ewc-delete mini-batch
  int epochs = 5;          // finetune (retrain uses retrain_epochs)
  int retrain_epochs = 20;
  double lr = 1e-3;        // Adam step size (finetune, retrain, ewc-delete)
  // newton
  double gamma = 0.03;     // paper: 0.01-0.05
  SolverOptions solve;
  // ewc-delete
  double strength = 1.0;   // s: weight of the Fisher anchor
  int max_steps = 300;
  int patience = 30;       // steps without a better Fq accuracy before stopping
  FisherOptions fisher;
  uint64_t seed = 0;
  std::string model_name = "mnist-cnn";  // retrain builds a fresh one
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
  std::function<void(const std::string& line)> log;
};

struct TreatResult {
  std::string treatment;
  double seconds = 0;
  std::map<std::string, double> stats;
};

void validate(const TreatOptions& options);

// Applies the treatment to `model` in place. `causes` index D; `fq` is the query failure set
// (ewc-delete stops on its accuracy). A diverging treatment throws and restores θ̂.
TreatResult treat(Module& model, const data::ImageSet& train, const std::vector<int64_t>& causes,
                  const data::ImageSet& fq, const TreatOptions& options);

// The training set without the given examples.
data::ImageSet without_examples(const data::ImageSet& train, const std::vector<int64_t>& causes);

}  // namespace lethe::repair
