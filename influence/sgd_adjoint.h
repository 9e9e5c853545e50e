#pragma once
// SGD-influence (Hara, Nitanda and Maehara, "Data Cleansing for Models Trained with SGD", 2019):
// the effect on the final model of leaving one example out of every minibatch of the training run
// that made it, to first order, by reading the run backwards. lethe trains with Adam, so the run's
// state is (θ, m, v) and each step's linearisation is Adam's:
//   δg_t = (H_t + λI) δθ_t + e_t,      e_t = −∇ℓ(z; θ_t)/|S_t| when z is in the batch S_t
//   δm'  = β1 δm + (1 − β1) δg_t,       δv' = β2 δv + 2(1 − β2) g_t ∘ δg_t
//   δθ'  = δθ − α_t (D1 ∘ δm' + D2 ∘ δv'),
// with α_t = lr / (1 − β1^t), s = √v' / √(1 − β2^t), D1 = 1/(s + ε), D2 = −m' / (s + ε)² · ∂s/∂v'
// (H_t the Hessian of the batch's mean loss at θ_t, λ the weight decay). The adjoint of that map
// carries u = ∇ℓ(Fq; θ_T) from the end of the run to its start, one step at a time:
//   b_m = A_m − α_t D1 ∘ A_θ,  b_v = A_v − α_t D2 ∘ A_θ,  c_t = (1 − β1) b_m + 2(1 − β2) b_v ∘ g_t
//   A_θ += (H_t + λI) c_t,     A_m = β1 b_m,            A_v = β2 b_v,
// and every example z of S_t collects <c_t, ∇ℓ(z; θ_t)> / |S_t|. The sum over the run is
//   r(z) = −<u, δθ_T(−z)>,
// the decrease of the failures' loss that removing z would bring (positive: a cause), in the
// units of linear influence's r. With β1 = β2 = 0 and D1 = 1 it is Hara et al.'s recursion for SGD.
// The run is replayed (learning/replay.h) one epoch at a time from the last.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "learning/recipe.h"
#include "nn/module.h"
#include "influence/solve.h"

namespace lethe::repair {

struct SgdInfluenceOptions {
  // H_t's products: ggn (the Gauss-Newton matrix, exact for a linear model's cross-entropy and
  // positive semi-definite) or hessian (central differences of the batch gradient, the full
  // Hessian to O(h²)).
  std::string curvature = "ggn";
  int epochs = 0;            // read only the run's last `epochs` epochs back; 0: all of it
  // The most the recorded steps may take: every epoch read back is kept from one replay when they
  // fit, else each is taken again when read (a second replay); one epoch must fit.
  double memory_gb = 8;
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
  std::function<void(const std::string& line)> log;
};

// Refuses bad options (UsageError naming the flag).
void validate(const SgdInfluenceOptions& options);

// r(z) for every example of D and each failure set's gradient u_q (summed over its examples) in
// `queries`' columns: queries[q] is ∇ℓ(F_q; θ_T), computed by `query_gradients` on the replayed
// model at θ_T. `model` is the trained model: its parameters are left as they are; the replay
// runs in a copy built from the recipe. Stats: the replay's distance from the model, seconds.
using QueryGradients = std::function<Block(Module& replayed)>;
Block sgd_influence(Module& model, const data::ImageSet& train, const TrainingRecipe& recipe,
                    const QueryGradients& query_gradients, const SgdInfluenceOptions& options,
                    std::map<std::string, double>& stats);

}  // namespace lethe::repair
