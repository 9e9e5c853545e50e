#pragma once
// TRAK (Park et al. 2023): attribution by a linear model in a random projection of the
// per-example gradients. Each example's gradient of the margin f(z) = z_y − log Σ_{j≠y} e^{z_j}
// (= log p_y − log(1 − p_y)) is projected to k dimensions by a seeded Johnson–Lindenstrauss
// matrix (nn/linalg.h jl_project, regenerated block by block, never stored), φ_i = Rᵀ∇f(z_i); the
// after-kernel K = ΦᵀΦ over D is inverted in double, and a query q's attribution to z_i is
// τ_q(z_i) = φ_qᵀ K⁻¹ φ_i (1 − p_i). lethe's score r = −τ (a cause of q's loss scores high), the
// same sign as linear influence's −∇ℓ(z)ᵀ H⁻¹ ∇ℓ(q).
//
// The margin is differentiated directly: its output gradient e_y − softmax over j ≠ y (0 at y)
// is formed per example in double from the logits (a log-sum-exp over j ≠ y, its maximum
// subtracted) and backpropagated through the per-example engine (PerExampleEngine::backward_from),
// and 1 − p_y = σ(−f). Forming ∇f as −∇ℓ/(1 − p_y) from the float loss gradient ∇ℓ instead would
// lose ∇z_y once p_y rounds to 1 in float (margins past about 17) and divide by zero past about 37,
// where the float loss is 0: a confidently fitted example would then dominate K.
//
// K is k × k. Where k exceeds the examples n, its rank is at most n and the same scores come
// from the n × n Gram matrix, Φ K⁺ = (ΦΦᵀ)⁺ Φ; either is inverted on its eigenvalues above
// 1e-10 of the largest (a pseudo-inverse), plus an optional relative damping.
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "influence/quantities.h"

namespace lethe::repair {

struct TrakOptions {
  int64_t proj_dim = 2048;  // k
  bool project = true;      // false: φ is the whole gradient (k = P), for checks on small models
  // dense: one JL matrix over all of θ, applied to each formed per-example gradient.
  // kron: k shared among the layers in proportion to their parameters; a Linear layer's share
  //   is a Kronecker product R_out ⊗ R_in applied to its captured output gradient δ and input ā
  //   (its per-example gradient δ āᵀ is rank one, so (R_outᵀδ)(R_inᵀā)ᵀ is exact and costs
  //   (out + in) per dimension pair instead of out · in), the other layers' shares dense JL
  //   matrices over their segments; a layer whose share covers its parameters is kept whole.
  //   The total is about k (shares rounded to whole k_out × k_in products). Cheaper, but a Kronecker product of two k'-dimensional JL
  //   matrices keeps inner products of rank-one gradients only to about √(2/k_out + 2/k_in).
  std::string projection = "dense";
  uint64_t seed = 0;        // the projection's
  double damping = 0;       // K + damping · mean eigenvalue(K) · I
  // dense: floats of per-example gradients formed at once to be projected (0: nn's
  // kProjectedGradientBudget, 4 GiB); a batch past it is projected a chunk of examples at a
  // time, with the same features to the bit on the CPU.
  int64_t gradient_budget = 0;
};

// Refuses (UsageError naming the flag) a k outside [1, 65536] or an unknown projection.
void validate(const TrakOptions& o);

// The projected margin gradients φ_i [n, k] of a set and 1 − p_i = σ(−f_i), p_i the probability
// of z_i's label.
struct TrakFeatures {
  int64_t n = 0, k = 0;
  std::vector<float> phi;
  std::vector<double> one_minus_p;
};
TrakFeatures trak_features(Module& model, const data::ImageSet& set, const TrakOptions& o, const PassOptions& opt = {});

// The inverse the kernel scores apply, formed once per model and D and kept for every block of
// queries: K⁺ = (ΦᵀΦ)⁺ [k, k] (damped as o.damping says) where k ≤ n, else (ΦΦᵀ)⁺ [n, n], the
// Gram form. Forming it costs 2nk² + O(k³): for 10,000 MNIST examples at k = 2,048 about 2.4 s
// on 2 cores, which every block of queries would otherwise pay again.
struct TrakKernel {
  int64_t n = 0, k = 0;
  bool gram = false;            // the [n, n] form (k > n)
  std::vector<double> inverse;  // [k, k], or [n, n] when gram
};
TrakKernel trak_kernel(const TrakFeatures& train, const TrakOptions& o);

// φ_qᵀ K⁺ φ_i for every query q (rows) and example z_i of D (columns): TRAK's kernel score, before
// its factor (1 − p_i).
std::vector<std::vector<double>> trak_kernel_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                                    const TrakOptions& o);
// The same with the inverse formed already (trak_kernel of the same features).
std::vector<std::vector<double>> trak_kernel_scores(const TrakFeatures& train, const TrakKernel& kernel,
                                                    const TrakFeatures& queries);

// φ_iᵀ K⁺ φ_i for every example of the set the features come from: the diagonal of its kernel
// scores against itself, without the n × n matrix where k ≤ n.
std::vector<double> trak_kernel_self(const TrakFeatures& train, const TrakOptions& o);

// r_q(z_i) = −τ_q(z_i) = −φ_qᵀ K⁺ φ_i (1 − p_i) for every query q (rows) and example z_i of D
// (columns).
std::vector<std::vector<double>> trak_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                             const TrakOptions& o);

// TRAK's ensemble over M models (checkpoints or independently trained ones), as TRAK defines
// it: the kernel scores averaged over the models, times the average over the models of 1 − p_i,
// τ_q(z_i) = (1/M Σ_m φ_qᵀ K_m⁺ φ_i) · (1/M Σ_m (1 − p_i,m)) — not the average of the per-model
// products. Models are added one at a time, so no two models' features need be held at once.
class TrakEnsemble {
 public:
  void add(const TrakFeatures& train, const TrakFeatures& queries, const TrakOptions& o);
  void add(const TrakFeatures& train, const TrakKernel& kernel, const TrakFeatures& queries);
  int64_t models() const { return models_; }
  // r_q(z_i) = −τ_q(z_i), queries as rows; empty rows before any model.
  std::vector<std::vector<double>> scores() const;

 private:
  int64_t models_ = 0;
  std::vector<std::vector<double>> kernel_;  // sums over the models
  std::vector<double> one_minus_p_;
};

}  // namespace lethe::repair
