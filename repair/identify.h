#pragma once
// Step I of the repair: score every training example by how much it causes the failures Fq
// (larger = stronger cause). Each method is one file of repair/methods/, registered in
// repair/registry.h; their equations: docs/method.md.
//   ewc       EWC-influence: a continual-learning update on Fq anchored by the diagonal Fisher,
//             r(z) = ℓ(z; θ*) − ℓ(z; θ̂)
//   kfac-ewc  the same anchored by the KFAC Fisher
//   linear    r(z) = −∇ℓ(z)ᵀ (F̂ + δI)⁻¹ ∇ℓ(Fq), solver diag | kfac | cg | lissa | gd
//   ekfac     the same with EK-FAC's eigenvalue-refitted KFAC as the curvature
//   sgd-influence  r(z) = −<∇ℓ(Fq; θ_T), δθ_T(−z)>: the training run replayed backwards (Hara et al.)
//   tracin    r(z) = −Σ_c η_c ∇ℓ_c(z)ᵀ ∇ℓ_c(Fq) over checkpoints c (the final model alone by default)
//   trak      TRAK: gradients in a seeded random projection, r(z) = −Σ_q φ_qᵀ (ΦᵀΦ)⁻¹ φ_z (1 − p_z)
//   gradcos   r(z) = −cos(∇ℓ(z), ∇ℓ(Fq))
//   loss      r(z) = ℓ(z; θ̂)
//   random    seeded uniform scores (the floor every method must beat)
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "learning/recipe.h"
#include "nn/module.h"
#include "influence/ekfac_factors.h"
#include "influence/quantities.h"
#include "influence/sgd_adjoint.h"
#include "influence/solve.h"
#include "influence/trak_features.h"
#include "repair/ewc_influence.h"

namespace lethe::repair {

// The registered methods' names (repair/registry.h), in listing order.
std::vector<std::string> identify_methods();

struct IdentifyOptions {
  std::string method = "ewc";
  int64_t batch = 256;    // examples per pass over D
  FisherOptions fisher;   // which Fisher anchors ewc/kfac-ewc and preconditions linear
  EwcUpdateOptions ewc;   // ewc, kfac-ewc (repair/ewc_influence.h)
  SolverOptions solve;    // linear (influence/solve.h)
  EkfacOptions ekfac;     // ekfac, with solve.damping as δ (influence/ekfac_factors.h)
  // trak (with checkpoints: the ensemble): proj_dim, damping, projection are the method's; its
  // seed and budget are set when it runs (influence/trak_features.h)
  TrakOptions trak;
  // sgd-influence: the run that trained the model, when known (lethe train records it)
  std::optional<TrainingRecipe> recipe;
  SgdInfluenceOptions sgd;
  // tracin, trak
  std::vector<std::string> checkpoints;  // extra checkpoints (safetensors) besides the model
  std::vector<double> checkpoint_lrs;    // their learning rates (default 1 each)
  uint64_t seed = 0;
  // Per-query scoring only (identify_per_query): each query vector (the preconditioned gradient)
  // replaced, layer by layer, by its best rank-r approximation before the products with D
  // (Kronfluence's query low-rank); 0 keeps them whole.
  int64_t query_rank = 0;
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
  std::function<void(const std::string& line)> log;
};

struct IdentifyResult {
  std::string method;
  std::vector<double> scores;            // r(z) for every example of D
  double seconds = 0;
  std::map<std::string, double> stats;   // method-specific figures (steps, losses, residuals)
};

// D scored against each query on its own, as if Fq were that one example.
struct QueryScores {
  std::string method;
  std::vector<std::vector<double>> scores;  // [query][example]
  double seconds = 0;
  std::map<std::string, double> stats;
};

// Validates options (UsageError on bad ones) without running anything.
void validate(const IdentifyOptions& options, int64_t n_train, int64_t n_fq);

// Scores D against Fq. The model's parameters are left exactly as they were.
IdentifyResult identify(Module& model, const data::ImageSet& train, const data::ImageSet& fq,
                        const IdentifyOptions& options);

// Scores D against every example of `queries` separately (the per-query attributions that the
// linear datamodeling score compares with retrained models). The model is left as it was.
// `cache` (repair/registry.h) keeps the work that depends on D alone for later calls with further
// queries and the same model, D and options.
struct QueryCache;
QueryScores identify_per_query(Module& model, const data::ImageSet& train, const data::ImageSet& queries,
                               const IdentifyOptions& options, QueryCache* cache = nullptr);

// Every training example's self-influence r(z_i, z_i) under the method of `options`: the
// diagonal of the scores D would get as its own queries, without the N × N matrix. A UsageError
// (naming the method and why) for a method that has none.
IdentifyResult self_influence(Module& model, const data::ImageSet& train, const IdentifyOptions& options);
// Whether `method` gives self-influence; when not, `why` says so.
bool has_self_influence(const std::string& method, std::string* why = nullptr);

}  // namespace lethe::repair
